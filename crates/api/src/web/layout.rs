//! The frame every screen shares (header, navigation, the historical banner, sign-out) and the
//! small pieces the screens are built from: counts drawn as bars, badges, tables.

use maud::{DOCTYPE, Markup, html};
use sv0_domain::Timestamp;

/// The style sheet (`/static/sv0.css`): the only style the pages use, as the
/// Content-Security-Policy allows no inline style.
pub const CSS: &str = include_str!("sv0.css");

/// What a page knows about who looks at it and as of when.
pub struct Frame<'a> {
    /// The page's title.
    pub title: &'a str,
    /// The signed-in principal and tenant.
    pub principal: &'a str,
    /// The tenant.
    pub tenant: &'a str,
    /// The session's CSRF token (for the sign-out form).
    pub csrf: &'a str,
    /// The history point the page shows, when it is not now.
    pub as_of: Option<&'a History>,
    /// Which navigation entry is current.
    pub current: Nav,
}

/// A page shown as the log stood at a point in the past.
pub struct History {
    /// What the user asked for (`as_of` in links).
    pub asked: String,
    /// The log position the page stands at.
    pub position: u64,
}

/// Navigation entries.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// `/`.
    Overview,
    /// A scope's pages.
    Scope,
    /// `/evidence`.
    Evidence,
    /// Sign-in and errors.
    None,
}

/// Every page's `<head>`.
fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · SV0" }
            link rel="stylesheet" href="/static/sv0.css";
        }
    }
}

/// A whole page.
pub fn page(frame: &Frame<'_>, body: Markup) -> Markup {
    let current = |nav: Nav| if frame.current == nav { Some("page") } else { None };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(frame.title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "SV0" }
                    nav aria-label="Main" {
                        a href=(with_as_of("/", frame.as_of)) aria-current=[current(Nav::Overview)] { "Overview" }
                        a href="/evidence" aria-current=[current(Nav::Evidence)] { "Evidence" }
                    }
                    span.who { (frame.principal) " · tenant " (frame.tenant) }
                    form.signout method="post" action="/logout" {
                        input type="hidden" name="csrf" value=(frame.csrf);
                        button type="submit" { "Sign out" }
                    }
                }
                @if let Some(history) = frame.as_of {
                    div.historical role="status" {
                        strong { "Historical view. " }
                        "As the log stood at position " (history.position) " (asked: " code { (history.asked) } "). "
                        "Nothing can be approved here. "
                        a href="?" { "Back to now" }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (frame.title) }
                    (body)
                }
            }
        }
    }
}

/// A page for someone not signed in (sign-in, errors before sign-in).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top { span.brand { "SV0" } }
                main id="main" { h1 { (title) } (body) }
            }
        }
    }
}

/// A link to `path` that keeps the page's history point.
pub fn with_as_of(path: &str, as_of: Option<&History>) -> String {
    match as_of {
        None => path.to_string(),
        Some(h) => {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{path}{sep}as_of={}", encode(&h.asked))
        }
    }
}

/// What `encode` escapes: everything but letters, digits and `-._~` (unreserved) and `:`, which
/// scope names (`project:HR-Automation`) keep readable in paths.
const ESCAPED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b':');

/// Percent-encodes a query or path value.
pub fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, ESCAPED).to_string()
}

/// One part of a bar: a label, a count and its CSS class.
pub struct Part<'a> {
    /// What is counted.
    pub label: &'a str,
    /// How many.
    pub count: u64,
    /// The class that colours it.
    pub class: &'a str,
}

/// Counts drawn as one stacked bar (SVG, described in words for screen readers) with a legend.
pub fn bar(caption: &str, parts: &[Part<'_>]) -> Markup {
    let total: u64 = parts.iter().map(|p| p.count).sum();
    let words: Vec<String> = parts.iter().map(|p| format!("{} {}", p.count, p.label)).collect();
    // Each part's (class, x, width) on a 1000-wide bar.
    let mut x = 0u64;
    let mut rects = Vec::new();
    for part in parts.iter().filter(|p| p.count > 0) {
        let width = part.count * 1000 / total.max(1);
        rects.push((part.class, x, width.max(2)));
        x += width;
    }
    html! {
        figure.bar {
            figcaption { (caption) }
            svg viewBox="0 0 1000 24" preserveAspectRatio="none" role="img" aria-label=(format!("{caption}: {}", words.join(", "))) {
                @if total == 0 {
                    rect class="empty" x="0" y="0" width="1000" height="24" {}
                }
                @for (class, x, width) in &rects {
                    rect class=(class) x=(x) y="0" width=(width) height="24" {}
                }
            }
            ul.legend {
                @for part in parts {
                    li { span class=(format!("swatch {}", part.class)) {} (part.label) " " strong { (part.count) } }
                }
            }
        }
    }
}

/// A posture's paths drawn by evidence grade, egress class and ownership: three bars with the
/// given captions.
pub fn posture_bars(posture: &sv0_domain::assessment::PostureSummary, captions: [&str; 3]) -> Markup {
    let (g, e, o) = (&posture.by_grade, &posture.by_egress, &posture.by_owner_state);
    html! {
        (bar(captions[0], &[
            Part { label: "A confirmed", count: g.a, class: "a" },
            Part { label: "B inferred", count: g.b, class: "b" },
            Part { label: "C standing", count: g.c, class: "c" },
        ]))
        (bar(captions[1], &[
            Part { label: "LLM API", count: e.llm_api, class: "llm_api" },
            Part { label: "external HTTP", count: e.external_http, class: "external_http" },
            Part { label: "cloud storage", count: e.cloud_storage, class: "cloud_storage" },
            Part { label: "internal", count: e.internal, class: "internal" },
        ]))
        (bar(captions[2], &[
            Part { label: "assigned", count: o.assigned, class: "assigned" },
            Part { label: "decayed", count: o.decayed, class: "decayed" },
            Part { label: "orphaned", count: o.orphaned, class: "orphaned" },
        ]))
    }
}

/// A series of counts over time drawn as a line (SVG), e.g. paths per scan.
pub fn sparkline(caption: &str, points: &[(Timestamp, u64)]) -> Markup {
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1);
    let n = points.len().max(2) - 1;
    let coords: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, (_, v))| format!("{},{}", i * 1000 / n, 60 - (v * 56 / max) as i64))
        .collect();
    let described = match (points.first(), points.last()) {
        (Some(first), Some(last)) => format!(
            "{caption}: {} values from {} ({}) to {} ({})",
            points.len(),
            first.1,
            day(first.0),
            last.1,
            day(last.0)
        ),
        _ => format!("{caption}: nothing yet"),
    };
    if let [(at, value)] = points {
        return html! { p { (caption) ": one so far, " (value) " on " (day(*at)) " (a line needs two)." } };
    }
    if points.is_empty() {
        return html! { p { (described) "." } };
    }
    html! {
        figure.spark {
            figcaption { (caption) }
            svg viewBox="0 0 1000 64" preserveAspectRatio="none" role="img" aria-label=(described) {
                polyline class="line" points=(coords.join(" ")) {}
            }
        }
    }
}

/// A day, `YYYY-MM-DD`.
pub fn day(at: Timestamp) -> String {
    at.date().to_string()
}

/// A time, RFC 3339.
pub fn time(at: Timestamp) -> String {
    at.to_rfc3339()
}

/// A badge for an evidence grade.
pub fn grade(grade: &str) -> Markup {
    let word = match grade {
        "A" => "confirmed",
        "B" => "inferred",
        _ => "standing",
    };
    html! { span class=(format!("badge grade-{}", grade.to_ascii_lowercase())) title=(word) { (grade) " · " (word) } }
}

/// A badge for a severity.
pub fn severity(severity: &str) -> Markup {
    html! { span class=(format!("badge sev-{severity}")) { (severity) } }
}

#[cfg(test)]
mod tests {
    #[test]
    fn links_escape_all_but_unreserved_characters_and_the_scope_colon() {
        assert_eq!(super::encode("project:HR Automation/x&y=é"), "project:HR%20Automation%2Fx%26y%3D%C3%A9");
        assert_eq!(super::encode("a-b.c_d~e"), "a-b.c_d~e");
    }
}
