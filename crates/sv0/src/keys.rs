//! `sv0 keys generate|rotate|export|list`.

use std::io::Write;

use sv0_log::EventLog;
use sv0_service::Service;

use crate::commands::{emit, print_json};
use crate::{EXIT_OK, KeysCommand, render};

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
            let actor = format!("user:{}", service.data_dir().principal()?);
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
