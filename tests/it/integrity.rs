//! Integrity at rest: a damaged log or views file is never read as intact. Bytes are flipped at
//! every record of a small log and across its views, and `verify`, `paths` and `rebuild` (the
//! real binary, so that an abort would show as exit 101) give either the pristine answer or a
//! clear error with exit 1 or 2. Records damaged through redb itself (valid page checksums)
//! are caught by the log's own record checksums; views that differ from the log are caught by
//! `verify`'s replay.

use std::path::{Path, PathBuf};
use std::process::Command;

use redb::{ReadableTable, TableDefinition};
use sv0_log::{EmbeddedLog, EventLog};
use sv0_tests::TempDir;

use crate::{block_on, sv0};

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");

/// A data directory holding the whole demo story: scans, approvals, packs.
fn demo() -> (TempDir, PathBuf) {
    let dir = TempDir::new();
    let data = dir.join("data");
    let (code, out) = sv0(&["--data-dir", data.to_str().unwrap(), "demo", "--json"]);
    assert_eq!(code, 0, "{out}");
    (dir, data)
}

/// Runs the sv0 binary on a data directory: (exit code, stdout, stderr).
fn run(data: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_sv0"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("SV0_TENANT")
        .output()
        .expect("run sv0");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn flip(file: &Path, offset: usize) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[offset] ^= 0x10;
    std::fs::write(file, bytes).unwrap();
}

/// The commands of the campaign, in order, with the pristine directory's answers.
const COMMANDS: [&[&str]; 4] = [&["verify"], &["paths", "--json"], &["rebuild"], &["paths", "--json"]];

/// Runs the campaign's commands on a damaged copy; every answer is the pristine one or a
/// clear error. Returns how many commands refused.
fn check_outcomes(case: &str, data: &Path, pristine: &[(i32, String, String)]) -> usize {
    let mut refused = 0;
    for (args, (code0, out0, _)) in COMMANDS.iter().zip(pristine) {
        let (code, out, err) = run(data, args);
        assert!(!err.contains("panicked") && code != 101, "{case}: `{args:?}` panicked: {err}");
        if code == *code0 {
            assert_eq!(&out, out0, "{case}: `{args:?}` exited {code} with a different answer\n{err}");
        } else {
            assert!(code == 1 || code == 2, "{case}: `{args:?}` exited {code}: {err}");
            assert!(
                err.contains("damaged") || out.contains("BROKEN") || out.contains("DIFFER"),
                "{case}: `{args:?}` exited {code} without saying what is damaged:\n{out}\n{err}"
            );
            refused += 1;
        }
    }
    refused
}

fn pristine_answers(data: &Path) -> Vec<(i32, String, String)> {
    let answers: Vec<_> = COMMANDS.iter().map(|args| run(data, args)).collect();
    for ((code, out, err), args) in answers.iter().zip(COMMANDS) {
        assert_eq!(*code, 0, "pristine `{args:?}`: {out}{err}");
    }
    answers
}

/// Where each record's event bytes lie in `log.redb`: the offset of a byte inside the event.
fn record_offsets(data: &Path) -> Vec<(u64, usize)> {
    let records = block_on(async {
        let log = EmbeddedLog::open(data.join("log.redb")).unwrap();
        log.read(1, None, usize::MAX).await.unwrap()
    });
    let file = std::fs::read(data.join("log.redb")).unwrap();
    records
        .iter()
        .map(|record| {
            // The record's layout: checksum, event id, recorded_at, subject length, subject, data.
            let mut header = record.event_id.to_vec();
            header.extend_from_slice(&record.recorded_at.to_be_bytes());
            let at = file
                .windows(header.len())
                .position(|w| w == header.as_slice())
                .unwrap_or_else(|| panic!("record {} not found in the file", record.seq));
            (record.seq, at + header.len() + 2 + record.subject.len() + record.data.len() / 2)
        })
        .collect()
}

#[test]
fn a_flipped_byte_in_any_record_or_in_the_views_never_gives_a_different_answer() {
    let (dir, data) = demo();
    let pristine = pristine_answers(&data);
    let mut cases = 0;
    let mut refused = 0;

    for (seq, offset) in record_offsets(&data) {
        let copy = dir.join(&format!("log-{seq}"));
        copy_dir(&data, &copy);
        flip(&copy.join("log.redb"), offset);
        let case = format!("log record {seq}");
        let n = check_outcomes(&case, &copy, &pristine);
        assert!(n >= 2, "{case}: the damaged log was read as intact");
        refused += n;
        cases += 1;
        std::fs::remove_dir_all(&copy).unwrap();
    }

    // Views: a byte flipped at evenly spaced offsets across the file (free pages included:
    // their answers must simply be the pristine ones).
    let size = std::fs::metadata(data.join("views.redb")).unwrap().len() as usize;
    for n in 0..24 {
        let offset = 4096 + n * (size - 4096) / 24 + 97;
        let copy = dir.join(&format!("views-{n}"));
        copy_dir(&data, &copy);
        flip(&copy.join("views.redb"), offset);
        refused += check_outcomes(&format!("views offset {offset}"), &copy, &pristine);
        cases += 1;
        std::fs::remove_dir_all(&copy).unwrap();
    }
    assert!(cases > 30 && refused > 0, "{cases} cases, {refused} refusals");
}

/// Opens `log.redb` with redb itself and rewrites one record's value with a byte changed:
/// every page checksum stays valid, so only the record's own checksum can tell.
fn damage_record_through_redb(log: &Path, seq: u64) {
    let db = redb::Database::open(log).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut events = txn.open_table(EVENTS).unwrap();
        let mut value = events.get(seq).unwrap().unwrap().value().to_vec();
        let last = value.len() - 1;
        value[last] ^= 0x01;
        events.insert(seq, value.as_slice()).unwrap();
    }
    txn.commit().unwrap();
}

/// The log position of the last pack event.
fn last_pack_position(data: &Path) -> u64 {
    block_on(async {
        let log = EmbeddedLog::open(data.join("log.redb")).unwrap();
        let records = log.read(1, None, usize::MAX).await.unwrap();
        records.iter().rev().find(|r| r.subject.ends_with(".pack")).unwrap().seq
    })
}

#[test]
fn a_record_whose_bytes_do_not_match_its_checksum_is_broken_by_position() {
    let (_dir, data) = demo();
    let seq = last_pack_position(&data);
    damage_record_through_redb(&data.join("log.redb"), seq);

    let (code, out, err) = run(&data, &["verify"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(&format!("log BROKEN: the record at position {seq} does not match its checksum")), "{out}");
    let (code, out, _) = run(&data, &["verify", "--json"]);
    assert_eq!(code, 1);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["log_damaged"]["position"], seq);
    assert_eq!(json["intact"], false);

    // Refolding reads the record and stops there, naming it; it is never skipped.
    let (code, _, err) = run(&data, &["rebuild"]);
    assert_eq!(code, 2);
    assert!(err.contains(&format!("the record at position {seq} does not match its checksum")), "{err}");
    // Exporting the packs reads the pack subjects and stops at it too.
    let export = data.parent().unwrap().join("export");
    let (code, _, err) = run(&data, &["export", "packs", "--out", export.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("position {seq}")), "{err}");
}

#[test]
fn a_zero_byte_or_truncated_log_says_so() {
    let (_dir, data) = demo();
    let log = data.join("log.redb");
    let bytes = std::fs::read(&log).unwrap();

    std::fs::write(&log, &bytes[..bytes.len() / 2]).unwrap();
    let (code, out, err) = run(&data, &["paths"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("log.redb is damaged"), "{err}");
    assert!(err.contains("restore log.redb from a backup"), "{err}");

    std::fs::write(&log, b"").unwrap();
    let (code, out, err) = run(&data, &["paths"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("log.redb is empty (0 bytes)"), "{err}");
    assert_eq!(std::fs::metadata(&log).unwrap().len(), 0, "nothing was written over it");
}

#[test]
fn verify_replays_the_log_and_finds_views_that_differ_from_it() {
    let (_dir, data) = demo();
    // A path row changed through redb: the file is sound, its content is not the log's.
    {
        let db = redb::Database::open(data.join("views.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let definition: TableDefinition<&[u8], &[u8]> = TableDefinition::new("paths");
            let mut paths = txn.open_table(definition).unwrap();
            let (key, mut value) = {
                let (k, v) = paths.first().unwrap().unwrap();
                (k.value().to_vec(), v.value().to_vec())
            };
            let last = value.len() - 1;
            value[last] ^= 0x01;
            paths.insert(key.as_slice(), value.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    // The quick check compares packs with the views and does not look at path rows.
    let (code, out, err) = run(&data, &["verify", "--quick"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("--quick: no replay"), "{out}");

    let (code, out, err) = run(&data, &["verify"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("views DIFFER from the replay of the log in paths"), "{out}");
    assert!(out.contains("chain intact"), "the evidence itself is intact: {out}");
    assert!(!data.join("views.verify.redb").exists(), "the scratch views are removed");

    let (code, _, err) = run(&data, &["rebuild"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run(&data, &["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("views: every table equals the replay of the log"), "{out}");
}

#[test]
fn a_log_written_before_record_checksums_is_upgraded_in_place() {
    let (_dir, data) = demo();
    let (_, before, _) = run(&data, &["paths", "--json"]);
    // Back to the first layout: no checksum in front of each record, no layout entry.
    {
        let db = redb::Database::open(data.join("log.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut events = txn.open_table(EVENTS).unwrap();
            let rows: Vec<(u64, Vec<u8>)> = events
                .iter()
                .unwrap()
                .map(|e| {
                    let (k, v) = e.unwrap();
                    (k.value(), v.value()[32..].to_vec())
                })
                .collect();
            for (seq, value) in rows {
                events.insert(seq, value.as_slice()).unwrap();
            }
            let meta_def: TableDefinition<&str, &str> = TableDefinition::new("meta");
            txn.open_table(meta_def).unwrap().remove("records").unwrap();
        }
        txn.commit().unwrap();
    }
    let (code, out, err) = run(&data, &["verify"]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, after, _) = run(&data, &["paths", "--json"]);
    assert_eq!(after, before);
    // Every record carries its checksum now: damaging one is found.
    let seq = last_pack_position(&data);
    damage_record_through_redb(&data.join("log.redb"), seq);
    let (code, out, _) = run(&data, &["verify"]);
    assert_eq!(code, 1, "{out}");
}

#[test]
fn a_file_closed_cleanly_opens_without_a_full_check_and_any_change_revokes_that() {
    let (_dir, data) = demo();
    let stamp = data.join("views.redb.intact");
    assert!(stamp.exists(), "a clean close leaves a stamp");
    // Touching the file (even with the same bytes) changes its change time: the stamp no
    // longer matches and the next open checks every page (and passes).
    let bytes = std::fs::read(data.join("views.redb")).unwrap();
    std::fs::write(data.join("views.redb"), &bytes).unwrap();
    let (code, out, err) = run(&data, &["paths"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(stamp.exists(), "stamped again after the checked open");
}

#[test]
fn a_jetstream_message_whose_bytes_do_not_match_its_checksum_is_broken_by_position() {
    let server = sv0_tests::nats::NatsServer::start();
    let url = server.url();
    let (dir, _) = demo();
    let data = dir.join("js");
    let data_str = data.to_str().unwrap();
    let (code, out) = sv0(&["--data-dir", data_str, "--log", &url, "demo", "--json"]);
    assert_eq!(code, 0, "{out}");
    let tenant = serde_json::from_str::<serde_json::Value>(&out).unwrap()["tenant"].as_str().unwrap().to_string();
    let subject = format!("sv0.log.{tenant}.pack");
    let (code, out) = sv0(&["--data-dir", data_str, "--log", &url, "verify"]);
    assert_eq!(code, 0, "{out}");

    // A message on a pack subject with a pack's bytes but a checksum that does not match them,
    // then one with no checksum at all: neither is a record SV0 wrote.
    let head = block_on(async {
        let client = async_nats::connect(&url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let stream = js.get_stream("SV0_LOG").await.unwrap();
        let last = stream.get_last_raw_message_by_subject(&subject).await.unwrap();
        let mut payload = last.payload.to_vec();
        payload.push(0);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", "00112233445566778899aabbccddeeff");
        headers.insert("Sv0-Record-Sha256", hex::encode([7u8; 32]).as_str());
        let ack = js.publish_with_headers(subject.clone(), headers, payload.into()).await.unwrap();
        ack.await.unwrap().sequence
    });
    let (code, out) = sv0(&["--data-dir", data_str, "--log", &url, "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "log BROKEN: the record at position {head} does not match its Sv0-Record-Sha256 checksum"
        )),
        "{out}"
    );
    // A projector never skips it either.
    let (code, out) = sv0(&["--data-dir", dir.join("js-2").to_str().unwrap(), "--log", &url, "paths"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(&format!("the record at position {head}")), "{out}");
}

/// SHA-256 of every file under `dir`, by relative path: to show nothing was written.
fn tree_digest(dir: &Path) -> std::collections::BTreeMap<String, String> {
    use sha2::Digest;
    let mut out = std::collections::BTreeMap::new();
    walk(dir, &mut |path| {
        let rel = path.strip_prefix(dir).unwrap().display().to_string();
        out.insert(rel, hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap())));
    });
    out
}

/// Calls `file` for every file under `dir`, then `dir` for each directory after its files.
fn walk_with(dir: &Path, file: &mut dyn FnMut(&Path), directory: &mut dyn FnMut(&Path)) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk_with(&path, file, directory);
        } else {
            file(&path);
        }
    }
    directory(dir);
}

fn walk(dir: &Path, file: &mut dyn FnMut(&Path)) {
    walk_with(dir, file, &mut |_| {});
}

/// Runs sv0 as a user who may read but not write `data`: as root, the `nobody` user (uid
/// 65534) through `setpriv`, with the files world-readable; otherwise this user, with the
/// write bits removed.
fn run_without_write_access(data: &Path, args: &[&str]) -> (i32, String, String) {
    let root = running_as_root();
    let mut command = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(env!("CARGO_BIN_EXE_sv0"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_sv0"))
    };
    let output = command
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("HOME", std::env::temp_dir())
        .env_remove("SV0_TENANT")
        .output()
        .expect("run sv0 (setpriv is util-linux's, installed with Debian)");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

/// Whether this process runs as root (`id -u`, no libc call needed).
fn running_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// Makes `dir` and everything under it readable by all and writable by nobody but root.
fn make_read_only(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let set =
        |mode: u32| move |path: &Path| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    walk_with(dir, &mut set(0o444), &mut set(0o555));
}

#[test]
fn a_read_only_copy_of_a_data_directory_answers_paths_and_verify() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, data) = demo();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The copy's views are behind its log: a later scan was appended after they were copied,
    // so answering needs a fold, which happens in memory.
    let copy = dir.join("copy");
    copy_dir(&data, &copy);
    let snapshot = String::from_utf8(crate::demo_snapshot("contoso-3-remediation.json")).unwrap().replacen(
        "\"observed_at\": \"2026-03-0",
        "\"observed_at\": \"2026-03-2",
        1,
    );
    let rescan = dir.join("rescan.json");
    std::fs::write(&rescan, snapshot).unwrap();
    let (code, out, err) = run(&data, &["scan", "import", rescan.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    std::fs::copy(data.join("log.redb"), copy.join("log.redb")).unwrap();
    let _ = std::fs::remove_file(copy.join("log.redb.intact"));
    let (_, expected, _) = run(&data, &["paths", "--json"]);

    make_read_only(&copy);
    let before = tree_digest(&copy);
    let (code, out, err) = run_without_write_access(&copy, &["paths", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, expected, "the read-only copy folds the new scan in memory and answers as the original");
    let (code, out, err) = run_without_write_access(&copy, &["verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("chain intact"), "{out}");
    let (code, _, err) = run_without_write_access(&copy, &["scan", "import", rescan.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("is read-only here"), "{err}");
    assert_eq!(tree_digest(&copy), before, "nothing in the read-only copy was written");
}

#[test]
fn an_audit_replay_directory_is_never_written() {
    let (dir, data) = demo();
    let replay = dir.join("replay");
    let (code, out, err) = run(&data, &["replay", "--until", "9", "--out", replay.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let before = tree_digest(&replay);
    for args in [&["paths", "--json"][..], &["findings"], &["verify"]] {
        let (code, out, err) = run(&replay, args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    }
    assert_eq!(tree_digest(&replay), before, "queries on a replay write nothing");
}

/// The shell script that runs sv0 commands on a full disk, inside a private mount namespace
/// (so the mount is gone when it ends, also when a test fails): a tmpfs just larger than the
/// copied data directory, filled to the last block; each command's stdout, stderr and exit code
/// go to `$out/N.{out,err,code}`. The copy keeps zeros as holes (`--sparse=always`): the pages a
/// views file has grown into but not yet used take no block, so a fold that writes them finds the
/// disk full, as it would on the host.
const ON_A_FULL_DISK: &str = r#"set -e
full="$1"; copy="$2"; out="$3"; sv0="$4"; shift 4
mount -t tmpfs -o size=$(( $(du -sk "$copy" | cut -f1) + 256 ))k sv0-full-disk "$full"
cp -a --sparse=always "$copy/." "$full/"
dd if=/dev/zero of="$full/filler" bs=4k 2>/dev/null || true
df -k "$full" | tail -1 > "$out/df"
set +e
n=0
for command in "$@"; do
  n=$((n + 1))
  "$sv0" --data-dir "$full" $command > "$out/$n.out" 2> "$out/$n.err"
  echo $? > "$out/$n.code"
done
"#;

/// A data directory whose disk is full, with views behind its log: queries and `verify` still
/// answer, current (the fold runs in memory and says so), and a command that would write fails
/// with the disk's error, damaging nothing.
#[test]
fn a_data_directory_on_a_full_disk_answers_current_and_refuses_writes() {
    let dir = TempDir::new();
    let data = dir.join("data");
    // The later scans are larger than the first, so that folding them needs more room than
    // the pages the first one's views file left free.
    let snapshot = |variant: u64, day: &str, name: &str| {
        let paths = if variant == 0 { 3_000 } else { 12_000 };
        let s = sv0_synth::synthetic::synthetic_snapshot(paths, variant, day).unwrap();
        let file = dir.join(name);
        std::fs::write(&file, serde_json::to_vec(&s).unwrap()).unwrap();
        file.display().to_string()
    };
    let (first, second, third) = (
        snapshot(0, "2026-03-01T00:00:00Z", "s1.json"),
        snapshot(1, "2026-03-02T00:00:00Z", "s2.json"),
        snapshot(2, "2026-03-03T00:00:00Z", "s3.json"),
    );
    assert_eq!(run(&data, &["scan", "import", &first]).0, 0);
    let copy = dir.join("copy");
    copy_dir(&data, &copy);
    assert_eq!(run(&data, &["scan", "import", &second]).0, 0);
    std::fs::copy(data.join("log.redb"), copy.join("log.redb")).unwrap();
    let _ = std::fs::remove_file(copy.join("log.redb.intact"));
    let (_, expected, _) = run(&data, &["paths", "--json"]);

    let (full, out) = (dir.join("full"), dir.join("out"));
    std::fs::create_dir_all(&full).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let import_third = format!("scan import {third}");
    let commands = ["paths --json", "findings --json", "verify", "verify --quick", &import_third, "verify"];
    let mut unshare = Command::new("unshare");
    if !running_as_root() {
        unshare.arg("--map-root-user");
    }
    let status = unshare
        .args(["--mount", "--propagation", "private", "sh", "-c", ON_A_FULL_DISK, "sh"])
        .args([&full, &copy, &out, Path::new(env!("CARGO_BIN_EXE_sv0"))])
        .args(commands)
        .env_remove("SV0_TENANT")
        .status()
        .expect("run unshare (util-linux's, installed with Debian)");
    assert!(status.success(), "mounting a small tmpfs in a private mount namespace failed ({status})");
    let df = std::fs::read_to_string(out.join("df")).unwrap();
    assert!(df.contains("100%"), "the disk was not full: {df}");
    let result = |n: usize| {
        let read = |ext: &str| std::fs::read_to_string(out.join(format!("{n}.{ext}"))).unwrap();
        (read("code").trim().parse::<i32>().unwrap(), read("out"), read("err"))
    };

    let (code, paths, err) = result(1);
    assert_eq!(code, 0, "{err}");
    assert_eq!(paths, expected, "the answer is current: the new scan was folded in memory");
    assert!(
        err.contains("cannot be saved here") && err.contains("No space left on device"),
        "{err} / {df} / {}",
        std::fs::read_to_string(out.join("2.err")).unwrap()
    );
    assert_eq!(result(2).0, 0, "{}", result(2).2);
    for n in [3, 6] {
        let (code, text, err) = result(n);
        assert_eq!(code, 0, "{text}{err}");
        assert!(text.contains("chain intact") && text.contains("every table equals the replay"), "{text}");
    }
    let (code, text, err) = result(4);
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains("chain intact"), "{text}");
    let (code, _, err) = result(5);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
