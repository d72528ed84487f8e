//! The long-running processes: `sv0 serve` (API, metrics, the CLI's local socket, folding and
//! sealing), `sv0 project` and `sv0 sign`.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use sv0_service::Service;

use crate::backend::AnyLog;

use crate::EXIT_OK;

/// `sv0 serve`: the API, `/metrics`, the local socket for the CLI (embedded log), and the
/// projector and signer folding the log as it grows, until Ctrl-C or SIGTERM.
pub(crate) async fn serve(
    service: &mut Service<AnyLog>,
    args: crate::ServeArgs,
    tenant: Option<&str>,
    no_seal: bool,
    execute: crate::local::Execute,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let metrics_listener = match &args.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for /metrics"))?,
        ),
        None => None,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut notices: Vec<String> = Vec::new();
    let mut state = sv0_api::ApiState::new(service);
    state.max_body = args.max_body;
    let config = crate::config::read(service.data_dir())?;
    state.sync_source = match (&args.sync_snapshot, args.sync_connectors.is_empty()) {
        (Some(file), _) => Some(sv0_api::syncs::SyncSource::Snapshot(file.clone())),
        (None, false) => Some(sv0_api::syncs::SyncSource::Connectors(Arc::new(crate::connect::SyncConnectors {
            args: crate::ConnectorArgs::new(args.sync_connectors.clone(), args.sync_from_export.clone()),
            tenant: tenant.map(str::to_string),
            config: config.connectors.clone().unwrap_or_default(),
        }))),
        (None, true) => None,
    };
    if let Some(oidc) = &config.oidc {
        let verifier = sv0_api::oidc::OidcVerifier::load(oidc, &state.http).await?;
        notices.push(format!("OIDC sign-in: tokens of {} for tenant {}", oidc.issuer, oidc.tenant));
        state.oidc = Some(Arc::new(verifier));
        if let Some(sso) = sv0_api::web::sso::Sso::from_config(oidc).map_err(anyhow::Error::msg)? {
            notices.push("the review screens sign in through the identity provider (/login/oidc)".to_string());
            state.sso = Some(Arc::new(sso));
        }
    }
    if let Some(ado) = config.azure_devops {
        state.azure_devops = ado.collection_urls;
    }
    if let Some(config) = config.github {
        let app = sv0_api::github::GitHubApp::load(&config, state.http.clone())?
            .remember_in(service.data_dir().root().join("github-deliveries"))?;
        notices.push("GitHub deployment protection rules: /integrations/github/deployment-protection".into());
        state.github = Some(Arc::new(app));
    }
    state.failures = sv0_api::auth::FailedAuth::with_limit(args.auth_failures_per_minute);
    state.max_connections = args.max_connections.max(1);
    state.metrics_tenant_labels = args.metrics_tenant_labels;
    state.trusted_proxies = args.trusted_proxies.clone();
    let state = Arc::new(state);
    // With the embedded log this process holds the directory's files: the CLI's
    // commands on it run here, through the directory's socket.
    let socket = match service.log() {
        crate::backend::AnyLog::Embedded(_) => {
            Some(crate::local::listen(service.data_dir().root(), Arc::clone(&state), stopped.clone(), execute)?)
        }
        crate::backend::AnyLog::JetStream(_) => None,
    };
    // Supervisors and tests read the addresses from the first lines, once all listen.
    writeln!(out, "serving on http://{}", listener.local_addr()?)?;
    if let Some(l) = &metrics_listener {
        writeln!(out, "metrics on http://{}/metrics", l.local_addr()?)?;
    }
    if let Some(socket) = &socket {
        writeln!(
            out,
            "CLI commands on {} run through this server ({})",
            service.data_dir().root().display(),
            socket.path().display()
        )?;
    }
    for notice in notices {
        writeln!(out, "{notice}")?;
    }
    out.flush()?;
    if let Some(listener) = metrics_listener {
        let mut metrics_stopped = stopped.clone();
        let app = sv0_api::metrics_router(Arc::clone(&state));
        tokio::spawn(sv0_api::serve_router(listener, app, 64, async move {
            let _ = metrics_stopped.wait_for(|stop| *stop).await;
        }));
    }
    let mut api_stopped = stopped.clone();
    let api = tokio::spawn(sv0_api::serve(listener, state, async move {
        let _ = api_stopped.wait_for(|stop| *stop).await;
    }));
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let mut follow_stopped = stopped;
    let shutdown = async move {
        let _ = follow_stopped.wait_for(|stop| *stop).await;
    };
    let seal = !no_seal;
    let mut progress = |seq: u64| {
        let _ = writeln!(out, "service: views at log position {seq}");
        let _ = out.flush();
    };
    follow(service, seal, &mut progress, shutdown).await?;
    api.await.context("the HTTP server task failed")??;
    writeln!(out, "stopped serving: views at log position {}, open requests finished", service.views().checkpoint()?)?;
    Ok(EXIT_OK)
}

/// `sv0 project` (fold, and publish signals on JetStream) or `sv0 sign` (fold and seal) as the
/// log grows, until Ctrl-C or SIGTERM. Supervisors read progress from standard output.
pub(crate) async fn project_or_sign(
    service: &mut Service<AnyLog>,
    seal: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let role = if seal { "signer" } else { "projector" };
    let mut last = None;
    let mut progress = |seq: u64| {
        if last != Some(seq) {
            last = Some(seq);
            // Supervisors and tests read progress from standard output, line by line.
            let _ = writeln!(out, "{role}: views at log position {seq}");
            let _ = out.flush();
        }
    };
    if seal {
        let none: Option<&sv0_service::signals::NoSignals> = None;
        service.follow(true, none, &mut progress, shutdown_signal()).await?;
    } else {
        follow(service, false, &mut progress, shutdown_signal()).await?;
    }
    Ok(EXIT_OK)
}

/// Folds the log as it grows (and seals, with `seal`); a projector on JetStream also
/// publishes SOC signals.
pub(crate) async fn follow(
    service: &mut Service<crate::backend::AnyLog>,
    seal: bool,
    progress: &mut impl FnMut(u64),
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    match service.log() {
        crate::backend::AnyLog::JetStream(log) => {
            let sink = crate::backend::NatsSignals((**log).clone());
            service.follow(seal, Some(&sink), progress, shutdown).await?;
        }
        crate::backend::AnyLog::Embedded(_) => {
            let none: Option<&sv0_service::signals::NoSignals> = None;
            service.follow(seal, none, progress, shutdown).await?;
        }
    }
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
