//! `sv0 keys generate|rotate|export|list` and `sv0 tokens create|revoke|list`: the secrets
//! of an installation.

use std::io::Write;

use sv0_domain::Timestamp;
use sv0_domain::access::Role;
use sv0_log::EventLog;
use sv0_service::Service;

use crate::output::{emit, print_json};
use crate::{EXIT_OK, KeysCommand, TokensCommand, render};

/// Runs one `sv0 keys` command.
pub async fn run(
    service: &mut Service<impl EventLog>,
    tenant: Option<&str>,
    command: KeysCommand,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    match command {
        KeysCommand::Generate(args) => {
            let key = service.generate_key()?;
            if args.json {
                print_json(out, &key)?;
            } else {
                writeln!(out, "created signing key {}\n{}", key.key_id, key.public_key_pem.trim_end())?;
            }
        }
        KeysCommand::Rotate(args) => {
            let actor = format!("host:{}", crate::config::principal(service.data_dir())?);
            let rotation = service.rotate_key(&args.reason, &actor).await?;
            if args.json {
                print_json(out, &rotation)?;
            } else {
                writeln!(out, "rotated signing key {} -> {}", rotation.retired_key_id, rotation.key_id)?;
                for chain in &rotation.chains {
                    writeln!(
                        out,
                        "  tenant {}: packs from {} are signed by the new key; the old key's range ends at {}",
                        chain.tenant,
                        chain.valid_from,
                        chain.valid_from - 1
                    )?;
                }
                writeln!(out, "the old private key is destroyed; export the public keys with `sv0 keys export`")?;
            }
        }
        KeysCommand::Export(args) => {
            let tenant = service.tenant(tenant)?;
            let pem = service.export_keys(&tenant).await?;
            emit(out, args.out.as_deref(), &pem, &format!("the public keys of tenant {tenant}"))?;
        }
        KeysCommand::List(args) => {
            let tenant = service.tenant(tenant)?;
            let keys = service.keys(&tenant)?;
            if args.json {
                print_json(out, &keys)?;
                return Ok(EXIT_OK);
            }
            let mut t = render::table(&["Key", "Packs", "State", "Replaced by", "Reason"]);
            for key in &keys {
                let range = match key.valid_to {
                    Some(to) => format!("{}..={to}", key.valid_from),
                    None => format!("{}..", key.valid_from),
                };
                let state = if key.current() { "current" } else { "retired" };
                t.add_row(vec![
                    key.key_id.clone(),
                    range,
                    state.to_string(),
                    key.replaced_by.clone().unwrap_or_default(),
                    key.rotation_reason.clone().unwrap_or_default(),
                ]);
            }
            writeln!(out, "{} key(s) of tenant {tenant}\n{t}", keys.len())?;
        }
    }
    Ok(EXIT_OK)
}

/// Runs one `sv0 tokens` command. Creating and revoking need `--tenant` (or one tenant in the
/// data); the actor recorded is the configured principal, else `system:cli`.
pub async fn tokens(
    service: &mut Service<impl EventLog>,
    tenant: Option<&str>,
    command: TokensCommand,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let tenant = match tenant {
        Some(name) => sv0_domain::TenantId::new(name)?,
        None => service.tenant(None)?,
    };
    let actor = crate::config::principal(service.data_dir()).map_or_else(
        |_| sv0_domain::events::Actor {
            principal: "system:cli".to_string(),
            actor: "system:cli".to_string(),
            credential: None,
        },
        |p| sv0_domain::events::Actor::host(&p),
    );
    match command {
        TokensCommand::Create(args) => {
            let roles = args.roles.iter().map(|r| r.parse()).collect::<Result<Vec<Role>, _>>()?;
            let name = args.name.unwrap_or_else(|| args.roles.join("+"));
            let principal = args.principal.unwrap_or_else(|| name.clone());
            let expires_at = args.expires_in.map(|d| {
                Timestamp(Timestamp::now().0.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
            });
            let issued = service.issue_token(&tenant, &name, &principal, roles, expires_at, &actor).await?;
            let r = &issued.record;
            let roles: Vec<&str> = r.roles.iter().map(|r| r.name()).collect();
            writeln!(
                out,
                "issued token {} ({}) for tenant {} as {} with role(s) {}",
                r.token_id,
                r.name,
                r.tenant,
                r.principal,
                roles.join(", ")
            )?;
            if let Some(at) = r.expires_at {
                writeln!(out, "it stops authenticating at {at}")?;
            }
            writeln!(out, "it is shown once; store it as a secret (an Authorization: Bearer header):")?;
            writeln!(out, "{}", issued.token)?;
        }
        TokensCommand::Revoke(args) => {
            let record = service.revoke_token(&tenant, &args.token, &args.reason, &actor).await?;
            writeln!(out, "revoked token {} ({}) of tenant {}", record.token_id, record.name, record.tenant)?;
        }
        TokensCommand::List(args) => {
            let tokens = service.tokens(&tenant)?;
            if args.json {
                let views: Vec<sv0_service::tokens::TokenView> = tokens.iter().map(Into::into).collect();
                print_json(out, &views)?;
                return Ok(EXIT_OK);
            }
            let mut t = render::table(&["Token", "Name", "Principal", "Roles", "Issued", "State"]);
            for token in &tokens {
                let roles: Vec<&str> = token.roles.iter().map(|r| r.name()).collect();
                let state = match (&token.revoked_at, token.expires_at) {
                    (Some(at), _) => format!("revoked {}", at.date()),
                    (None, Some(at)) if at <= Timestamp::now() => format!("expired {}", at.date()),
                    (None, Some(at)) => format!("active until {}", at.date()),
                    (None, None) => "active".to_string(),
                };
                t.add_row(vec![
                    token.token_id.clone(),
                    token.name.clone(),
                    token.principal.clone(),
                    roles.join(", "),
                    token.issued_at.date().to_string(),
                    state,
                ]);
            }
            writeln!(out, "{} token(s) of tenant {tenant}\n{t}", tokens.len())?;
        }
    }
    Ok(EXIT_OK)
}
