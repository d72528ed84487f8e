//! Export mode: a directory of vendor API pages (`sv0 scan run --from-export`) read as the live
//! APIs would answer, page by page, each file bounded in size.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::ConnectorError;

use super::*;

/// An export directory: `<api>.json`, and for more pages `<api>.2.json`, `<api>.3.json`...
/// (see docs/connectors.md).
pub struct ExportDir {
    root: PathBuf,
    /// A single file given instead of a directory (AzureHound's output): every API reads it.
    single: bool,
}

impl ExportDir {
    /// Opens a directory.
    pub fn open(root: &Path) -> Result<ExportDir, ConnectorError> {
        if root.is_file() {
            return Ok(ExportDir { root: root.to_path_buf(), single: true });
        }
        if !root.is_dir() {
            return Err(ConnectorError::Setup(format!("{} is neither a directory nor a file", root.display())));
        }
        Ok(ExportDir { root: root.to_path_buf(), single: false })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every page of one API, in page order; on a failure, the items of the pages before it and
    /// what went wrong.
    pub(super) fn read(
        &self,
        api: &'static str,
        paging: Paging,
        keys: &[crate::schema::Field],
        ledger: &Ledger,
    ) -> (Vec<Value>, Option<String>) {
        let mut items = Vec::new();
        match self.read_into(api, paging, keys, ledger, &mut items) {
            Ok(()) => (items, None),
            Err(error) => (items, Some(error)),
        }
    }

    pub(super) fn read_into(
        &self,
        api: &'static str,
        paging: Paging,
        keys: &[crate::schema::Field],
        ledger: &Ledger,
        items: &mut Vec<Value>,
    ) -> Result<(), String> {
        let mut pages: Vec<(u32, PathBuf)> = Vec::new();
        if self.single {
            pages.push((1, self.root.clone()));
        }
        let entries = match self.single {
            true => Vec::new(),
            false => std::fs::read_dir(&self.root)
                .map_err(|e| format!("cannot read {}: {e}", self.root.display()))?
                .flatten()
                .collect(),
        };
        for entry in entries {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name.strip_prefix(api).and_then(|r| r.strip_suffix(".json")) else { continue };
            let number = match rest {
                "" => 1,
                _ => match rest.strip_prefix('.').and_then(|n| n.parse::<u32>().ok()) {
                    Some(n) => n,
                    None => continue,
                },
            };
            pages.push((number, entry.path()));
        }
        if pages.is_empty() {
            return Err(format!("no {api}.json in {}", self.root.display()));
        }
        pages.sort();
        // The pages must run 1, 2, 3...: a gap is a page that was never saved.
        for (expected, (number, _)) in (1u32..).zip(&pages) {
            if *number != expected {
                return Err(format!("{api}: page {expected} is missing (found page {number})"));
            }
        }
        let last = pages.len() as u32;
        let mut total: Option<u64> = None;
        let mut read = 0u64;
        for (number, path) in pages {
            let metadata = std::fs::metadata(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            // A FIFO or a link to a device (/dev/zero) would never end: only regular files.
            if !metadata.is_file() {
                return Err(format!("{} is not a regular file", path.display()));
            }
            if metadata.len() > MAX_EXPORT_FILE_BYTES {
                return Err(format!("{} is larger than {MAX_EXPORT_FILE_BYTES} bytes", path.display()));
            }
            let mut body = Vec::new();
            std::fs::File::open(&path)
                .and_then(|f| {
                    std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_EXPORT_FILE_BYTES + 1), &mut body)
                })
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if body.len() as u64 > MAX_EXPORT_FILE_BYTES {
                return Err(format!("{} grew past {MAX_EXPORT_FILE_BYTES} bytes while it was read", path.display()));
            }
            let page = parse_page(&body, paging).map_err(|e| format!("page {number} of {api} is malformed: {e}"))?;
            crate::schema::check(&page.items, keys).map_err(|e| format!("page {number} of {api} is malformed: {e}"))?;
            // Saved headers (`curl -D`): a ServiceNow page names its next page in `Link` and
            // the whole list's size in `X-Total-Count`.
            let headers = self.headers_of(&path)?;
            let link_next = headers.as_ref().and_then(next_link_header);
            if let Some(count) = headers.as_ref().and_then(|h| h.get("x-total-count")).and_then(|v| v.to_str().ok()) {
                total = count.trim().parse().ok().or(total);
            }
            if number == last && (page.next.is_some() || link_next.is_some()) {
                return Err(format!(
                    "page {number} of {api} announces a next page, but {api}.{}.json is not in the export: the list is incomplete",
                    number + 1
                ));
            }
            read += page.items.len() as u64;
            ledger.page(api, page.items.len());
            items.extend(page.items);
        }
        if let Some(total) = total.filter(|t| *t != read) {
            return Err(format!("{api}: X-Total-Count says {total} records, the pages hold {read}"));
        }
        Ok(())
    }

    /// The headers saved beside a page (`<page>.headers`, as `curl -D` writes them), if any.
    pub(super) fn headers_of(&self, page: &Path) -> Result<Option<reqwest::header::HeaderMap>, String> {
        let path = page.with_extension("headers");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let mut headers = reqwest::header::HeaderMap::new();
        for line in text.lines() {
            let Some((name, value)) = line.split_once(':') else { continue };
            let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()),
                reqwest::header::HeaderValue::from_str(value.trim()),
            ) else {
                continue;
            };
            headers.append(name, value);
        }
        Ok(Some(headers))
    }
}
