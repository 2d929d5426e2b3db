//! Tests of the `tunnel` binary as a user runs it: exit codes and one-line error
//! messages for bad settings, `keygen` and `fingerprint` (checked against openssl),
//! `demo`, and the literal `tunnel local --forward 8080:remote:9000` / `tunnel remote`
//! pair configured through the environment inside a network namespace of its own.
//!
//! Traffic through in-process roles is covered in `tunnel.rs`; this file only runs
//! the built executable, each process with a deadline and killed by its PID.

// The helpers in common/ are `pub` for every test crate's use; a test crate exports
// nothing, so this lint's advice does not apply.
#![allow(unreachable_pub)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{PROMPT, TempDir, fixture, openssl, path_str, read_text};

/// Deadline for a command that should fail or finish at once.
const QUICK: Duration = Duration::from_secs(10);

/// Deadline for `tunnel demo` with 8 MiB per cipher (about 1 s here).
const DEMO_DEADLINE: Duration = Duration::from_secs(60);

/// Bytes the demo pushes each way per cipher.
const DEMO_BYTES: &str = "8388608";

/// A well-formed fingerprint no test key has.
const UNKNOWN_PIN: &str = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

// ---------------------------------------------------------------------------
// Settings errors: exit 3 (clap usage: 2) and one "error: ..." line.

#[test]
fn missing_key_file_is_named() {
    let missing = "/nonexistent-tunnel-test-dir/missing.pem";
    let out = run(local_with_key(missing), QUICK);
    assert_config_error(&out, &[missing, "No such file"]);
}

#[test]
fn public_key_given_as_private_key_is_named() {
    let public = fixture("test-only-local.pub.pem");
    let out = run(local_with_key(path_str(&public)), QUICK);
    assert_config_error(&out, &[path_str(&public), "this is a public key"]);
}

#[test]
fn encrypted_private_keys_are_refused() {
    let dir = TempDir::new("encrypted");
    let pkcs8 = dir.path("enc-pkcs8.pem");
    let pkcs1 = dir.path("enc-pkcs1.pem");
    let gen_pkcs8 = [
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
    ];
    openssl(
        &[
            &gen_pkcs8[..],
            &["-aes256", "-pass", "pass:x", "-out", path_str(&pkcs8)],
        ]
        .concat(),
    );
    let gen_pkcs1 = ["genrsa", "-traditional", "-aes256", "-passout", "pass:x"];
    openssl(&[&gen_pkcs1[..], &["-out", path_str(&pkcs1), "2048"]].concat());
    assert!(read_text(&pkcs8).starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    assert!(read_text(&pkcs1).contains("Proc-Type: 4,ENCRYPTED"));

    for key in [&pkcs8, &pkcs1] {
        let out = run(local_with_key(path_str(key)), QUICK);
        assert_config_error(&out, &[path_str(key), "encrypted with a passphrase"]);
    }
}

#[test]
fn too_small_key_is_refused() {
    let small = fixture("test-only-small.pem");
    let out = run(local_with_key(path_str(&small)), QUICK);
    assert_config_error(&out, &[path_str(&small), "bits", "2048"]);
}

#[test]
fn key_just_under_the_minimum_is_refused_with_its_exact_size() {
    // 2000 bits occupies as many 64-bit words as 2048; the check must count bits.
    let dir = TempDir::new("key-2000");
    let key = dir.path("k2000.pem");
    openssl(&["genrsa", "-out", path_str(&key), "2000"]);
    let out = run(local_with_key(path_str(&key)), QUICK);
    assert_config_error(&out, &[path_str(&key), "2000 bits", "2048"]);
}

#[test]
fn fingerprint_reports_the_exact_modulus_size() {
    let dir = TempDir::new("key-3000");
    let key = dir.path("k3000.pem");
    openssl(&["genrsa", "-out", path_str(&key), "3000"]);
    let out = run(tunnel(&["fingerprint", path_str(&key)]), QUICK);
    assert_success(&out);
    assert!(out.stdout.contains("(3000 bits)"), "{}", out.stdout);
}

#[test]
fn rsa_pss_restricted_keys_are_refused() {
    // Their SPKI names another algorithm, so a fingerprint of ours would not match
    // the openssl pipeline's; they are refused rather than silently re-encoded.
    let dir = TempDir::new("key-pss");
    let private = dir.path("pss.pem");
    let public = dir.path("pss.pub");
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA-PSS",
        "-out",
        path_str(&private),
    ]);
    openssl(&[
        "pkey",
        "-in",
        path_str(&private),
        "-pubout",
        "-out",
        path_str(&public),
    ]);
    for key in [&private, &public] {
        let out = run(tunnel(&["fingerprint", path_str(key)]), QUICK);
        assert_config_error(
            &out,
            &[
                path_str(key),
                "an RSA-PSS-restricted key",
                "1.2.840.113549.1.1.10",
                "plain RSA",
            ],
        );
    }
}

#[test]
fn a_whole_fingerprint_line_pins_the_remote() {
    // `--remote-key "$(tunnel fingerprint remote.pub)"` works as typed; a bare
    // fingerprint without its prefix gets a hint instead of "no such file".
    let public = fixture("test-only-remote.pub.pem");
    let out = run(tunnel(&["fingerprint", path_str(&public)]), QUICK);
    assert_success(&out);
    let line = out.stdout.trim().to_owned();
    let bind_in_use = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = bind_in_use.local_addr().unwrap().port();
    let forward = format!("{port}:127.0.0.1:9");
    let mut cmd = tunnel(&["local", "--forward", &forward, "--remote-key", &line]);
    cmd.arg("--key").arg(fixture("test-only-local.pem"));
    // The pin parses, so the first error is the port held above.
    assert_config_error(&run(cmd, QUICK), &["cannot listen", &port.to_string()]);

    let bare = line
        .split_whitespace()
        .next()
        .unwrap()
        .trim_start_matches("SHA256:");
    let mut cmd = tunnel(&["local", "--forward", "0:127.0.0.1:9", "--remote-key", bare]);
    cmd.arg("--key").arg(fixture("test-only-local.pem"));
    assert_config_error(&run(cmd, QUICK), &[bare, "SHA256: prefix"]);
}

#[test]
fn zero_handshake_or_connect_timeout_is_refused() {
    for option in ["--handshake-timeout", "--connect-timeout"] {
        let mut cmd = local_forward("0:127.0.0.1:9");
        cmd.args([option, "0s"]);
        assert_config_error(&run(cmd, QUICK), &[option, "longer than zero"]);
    }
}

#[test]
fn forward_lists_from_the_environment_tolerate_spaces() {
    let mut cmd = tunnel(&["local", "--remote-key", UNKNOWN_PIN]);
    cmd.arg("--key").arg(fixture("test-only-local.pem"));
    cmd.env("TUNNEL_FORWARD", "0:127.0.0.1:9, x");
    // The first rule parses despite the space after the comma; the second is named.
    assert_config_error(&run(cmd, QUICK), &["\" x\"", "too few parts"]);
}

#[test]
fn a_fifo_or_device_as_key_file_is_refused_at_once() {
    // Opening a FIFO for reading would block until a writer came; reading
    // /dev/zero would never end. Both must be refused before they are opened.
    let dir = TempDir::new("fifo-key");
    let fifo = dir.path("key.fifo");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("running mkfifo");
    assert!(made.success(), "mkfifo failed");
    let out = run(local_with_key(path_str(&fifo)), QUICK);
    assert_config_error(&out, &[path_str(&fifo), "not a regular file"]);

    let mut cmd = tunnel(&[
        "local",
        "--forward",
        "0:127.0.0.1:9",
        "--remote-key",
        "/dev/zero",
    ]);
    cmd.arg("--key").arg(fixture("test-only-local.pem"));
    assert_config_error(&run(cmd, QUICK), &["/dev/zero", "not a regular file"]);
}

#[test]
fn fatal_errors_are_json_when_logs_are() {
    // Containers set JSON logs on stdout; a configuration error must arrive there as
    // a JSON object too, not as a bare line on another stream.
    let missing = "/nonexistent-tunnel-test-dir/missing.pem";
    let mut cmd = local_with_key(missing);
    cmd.args(["--log-format", "json", "--log-output", "stdout"]);
    let out = run(cmd, QUICK);
    assert_eq!(out.status.code(), Some(3), "{}", out.stderr);
    let line = out.stdout.lines().last().unwrap_or_default();
    assert!(
        line.starts_with('{') && line.ends_with('}'),
        "not JSON: {line}"
    );
    for needle in ["\"level\":\"ERROR\"", missing, "\"exit_code\":3"] {
        assert!(line.contains(needle), "{needle} missing from {line}");
    }
    assert!(out.stderr.is_empty(), "stderr: {}", out.stderr);
}

#[test]
fn non_rsa_key_is_refused() {
    let ed25519 = fixture("test-only-ed25519.pem");
    let out = run(local_with_key(path_str(&ed25519)), QUICK);
    assert_config_error(
        &out,
        &["--key", path_str(&ed25519), "an Ed25519 key", "plain RSA"],
    );
}

#[test]
fn bad_forward_rule_is_named() {
    let mut cmd = tunnel(&[
        "local",
        "--forward",
        "8080:remote",
        "--remote-key",
        UNKNOWN_PIN,
    ]);
    cmd.arg("--key").arg(fixture("test-only-local.pem"));
    let out = run(cmd, QUICK);
    assert_config_error(&out, &["--forward", "\"8080:remote\"", "remote port"]);
}

#[test]
fn two_rules_on_one_port_are_refused_before_binding() {
    let out = run(local_forward("18080:127.0.0.1:9,18080:127.0.0.1:10"), QUICK);
    assert_config_error(
        &out,
        &[
            "--forward",
            "\"18080:127.0.0.1:10\"",
            "127.0.0.1:18080",
            "as an earlier rule",
        ],
    );
}

#[test]
fn empty_key_file_is_named() {
    let dir = TempDir::new("empty-key");
    let empty = dir.path("empty.pem");
    std::fs::write(&empty, b"").unwrap();
    let out = run(local_with_key(path_str(&empty)), QUICK);
    assert_config_error(&out, &["--key", path_str(&empty), "is empty"]);
}

#[test]
fn bad_remote_key_fingerprint_is_named() {
    let mut cmd = tunnel(&[
        "local",
        "--forward",
        "0:127.0.0.1:9",
        "--remote-key",
        "SHA256:short",
    ]);
    cmd.arg("--key").arg(fixture("test-only-local.pem"));
    let out = run(cmd, QUICK);
    assert_config_error(&out, &["\"SHA256:short\"", "is not a key fingerprint"]);
}

#[test]
fn remote_port_in_use_exits_promptly() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let started = Instant::now();
    let out = run(remote_on(&addr, "127.0.0.1:9"), QUICK);
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
    assert_config_error(&out, &[&format!("cannot listen on {addr}"), "in use"]);
}

#[test]
fn local_port_in_use_exits_promptly() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let started = Instant::now();
    let out = run(local_forward(&format!("{port}:127.0.0.1:9")), QUICK);
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
    assert_config_error(
        &out,
        &[&format!("cannot listen on 127.0.0.1:{port}"), "in use"],
    );
}

#[test]
fn an_open_file_limit_too_low_for_the_connection_limit_is_reported() {
    // The hard limit is lowered too, so the role cannot raise its way out; the port
    // is taken so that it exits right after the check.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "ulimit -n 100 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_tunnel"))
        .args(["remote", "--listen", &addr, "--target", "127.0.0.1:9"])
        .args(["--max-connections", "200"])
        .arg("--key")
        .arg(fixture("test-only-remote.pem"))
        .arg("--authorized-keys")
        .arg(fixture("test-only-local.pub.pem"));
    clean_env(&mut cmd);
    let out = run(cmd, QUICK);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{}", out.stderr);
    let warning = out
        .stderr
        .lines()
        .find(|line| line.contains("open-file limit is below what --max-connections needs"))
        .unwrap_or_else(|| panic!("no open-file warning in:\n{}", out.stderr));
    assert!(warning.contains("limit=100"), "{warning}");
    assert!(warning.contains("needed=464"), "{warning}");

    // Where the hard limit holds the default connection limit, a soft limit below it
    // is raised without a word.
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    if hard >= 2 * 1024 + 64 {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "ulimit -S -n 100 && exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_tunnel"))
            .args(remote_on(&addr, "127.0.0.1:9").get_args());
        clean_env(&mut cmd);
        let out = run(cmd, QUICK);
        assert_eq!(out.status.code(), Some(3), "stderr:\n{}", out.stderr);
        assert!(!out.stderr.contains("open-file limit"), "{}", out.stderr);
    }
}

#[test]
fn missing_authorized_keys_file_is_named() {
    let missing = "/nonexistent-tunnel-test-dir/authorized";
    let mut cmd = tunnel(&[
        "remote",
        "--listen",
        "127.0.0.1:0",
        "--target",
        "127.0.0.1:9",
    ]);
    cmd.arg("--key").arg(fixture("test-only-remote.pem"));
    cmd.args(["--authorized-keys", missing]);
    assert_config_error(&run(cmd, QUICK), &[missing]);
}

#[test]
fn missing_required_options_are_usage_errors() {
    let out = run(tunnel(&["local"]), QUICK);
    assert_usage_error(&out, &["--forward", "--key", "--remote-key"]);
    let out = run(tunnel(&["remote"]), QUICK);
    assert_usage_error(&out, &["--target", "--key", "--authorized-keys"]);
}

#[test]
fn negative_counts_are_named_with_their_range() {
    // A leading minus must reach the range check instead of being read as an
    // unknown flag, so the message says which option and which values it takes.
    for (option, range) in [
        ("--max-connections", "1..=1000000"),
        ("--pool", "0..=256"),
        ("--threads", "0..=1024"),
    ] {
        let mut cmd = local_forward("0:127.0.0.1:9");
        cmd.args([option, "-5"]);
        assert_usage_error(&run(cmd, QUICK), &["'-5'", option, range]);
    }
}

#[test]
fn unknown_cipher_is_a_usage_error() {
    let mut cmd = remote_on("127.0.0.1:0", "127.0.0.1:9");
    cmd.args(["--ciphers", "rot13"]);
    assert_usage_error(
        &run(cmd, QUICK),
        &["'rot13'", "--ciphers", "chacha20-poly1305"],
    );
}

// ---------------------------------------------------------------------------
// keygen and fingerprint.

#[test]
fn keygen_writes_a_pair_that_openssl_reads() {
    let dir = TempDir::new("keygen");
    let private = dir.path("id.pem");
    let public = dir.path("id.pem.pub");
    let out = run(keygen(&private, &["--bits", "2048"]), QUICK);
    assert_success(&out);
    assert_eq!(mode_of(&private), "600", "private key mode");
    assert!(read_text(&private).starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(read_text(&public).starts_with("-----BEGIN PUBLIC KEY-----"));
    let printed = stdout_line_value(&out, "fingerprint:");

    // openssl reads the private key and derives the same public key as the file's.
    let derived = openssl(&[
        "pkey",
        "-in",
        path_str(&private),
        "-pubout",
        "-outform",
        "DER",
    ]);
    let written = openssl(&[
        "pkey",
        "-pubin",
        "-in",
        path_str(&public),
        "-outform",
        "DER",
    ]);
    assert!(
        derived == written,
        "the .pub file holds another key than the private one"
    );
    let listed = fingerprints(&[&private, &public]);
    assert_eq!(listed, vec![printed.clone(), printed.clone()]);
    assert_eq!(printed, openssl_fingerprint(&public));
}

#[test]
fn keygen_writes_both_files_with_unix_line_endings() {
    let dir = TempDir::new("keygen-lf");
    let private = dir.path("id.pem");
    assert_success(&run(keygen(&private, &["--bits", "2048"]), QUICK));
    for path in [private.clone(), dir.path("id.pem.pub")] {
        let text = read_text(&path);
        assert!(
            !text.contains('\r'),
            "{} has CRLF line endings: {text:?}",
            path.display()
        );
    }
}

#[test]
fn keygen_refuses_to_overwrite_without_force() {
    let dir = TempDir::new("keygen-force");
    let private = dir.path("id.pem");
    let public = dir.path("id.pem.pub");
    assert_success(&run(keygen(&private, &["--bits", "2048"]), QUICK));
    let before = (read_text(&private), read_text(&public));

    let out = run(keygen(&private, &["--bits", "2048"]), QUICK);
    assert_config_error(&out, &[path_str(&private), "file exists", "--force"]);
    let after = (read_text(&private), read_text(&public));
    assert!(before == after, "a refused keygen changed the files");

    let out = run(keygen(&private, &["--bits", "2048", "--force"]), QUICK);
    assert_success(&out);
    let forced = (read_text(&private), read_text(&public));
    assert!(
        forced.0 != before.0 && forced.1 != before.1,
        "--force did not rewrite"
    );
    assert_eq!(mode_of(&private), "600", "private key mode after --force");
    let printed = stdout_line_value(&out, "fingerprint:");
    assert_eq!(
        fingerprints(&[&private, &public]),
        vec![printed.clone(), printed]
    );
}

#[test]
fn keygen_refuses_when_only_the_public_file_exists() {
    let dir = TempDir::new("keygen-pub-only");
    let private = dir.path("id.pem");
    let public = dir.path("id.pem.pub");
    std::fs::write(&public, "kept\n").unwrap();
    let out = run(keygen(&private, &["--bits", "2048"]), QUICK);
    assert_config_error(&out, &[path_str(&public), "file exists", "--force"]);
    assert!(!private.exists(), "a refused keygen wrote the private key");
    assert_eq!(read_text(&public), "kept\n");
}

#[test]
fn keygen_force_over_a_readable_file_leaves_it_private() {
    let dir = TempDir::new("keygen-force-mode");
    let private = dir.path("id.pem");
    std::fs::write(&private, "old\n").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(keygen(&private, &["--bits", "2048", "--force"]), QUICK);
    assert_success(&out);
    assert!(read_text(&private).starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(
        mode_of(&private),
        "600",
        "new private key left readable by others"
    );
}

#[test]
fn keygen_refuses_small_keys() {
    let dir = TempDir::new("keygen-small");
    let private = dir.path("id.pem");
    let out = run(keygen(&private, &["--bits", "1024"]), QUICK);
    assert_config_error(&out, &["--bits 1024", "2048 to 8192 bits"]);
    assert!(!private.exists() && !dir.path("id.pem.pub").exists());
}

#[test]
fn fingerprint_matches_the_openssl_pipeline_for_openssl_keys() {
    let dir = TempDir::new("fingerprint");
    let pkcs8 = dir.path("k.pem");
    let pkcs1 = dir.path("k1.pem");
    let spki = dir.path("pub.pem");
    let rsa_pub = dir.path("pub1.pem");
    common::openssl_private_keys(&pkcs8, &pkcs1);
    openssl(&[
        "rsa",
        "-in",
        path_str(&pkcs8),
        "-pubout",
        "-out",
        path_str(&spki),
    ]);
    let rsa_out = ["-RSAPublicKey_out", "-out", path_str(&rsa_pub)];
    openssl(&[&["rsa", "-in", path_str(&pkcs1)][..], &rsa_out].concat());
    assert!(read_text(&pkcs1).starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(read_text(&rsa_pub).starts_with("-----BEGIN RSA PUBLIC KEY-----"));

    let expected_pkcs8 = openssl_fingerprint(&spki);
    let expected_pkcs1 = openssl_fingerprint(&rsa_pub);
    assert_ne!(expected_pkcs8, expected_pkcs1);
    let listed = fingerprints(&[&pkcs8, &spki, &pkcs1, &rsa_pub]);
    assert_eq!(
        listed,
        vec![
            expected_pkcs8.clone(),
            expected_pkcs8,
            expected_pkcs1.clone(),
            expected_pkcs1
        ]
    );
}

// ---------------------------------------------------------------------------
// demo.

#[test]
fn demo_passes_with_both_ciphers() {
    let started = Instant::now();
    let out = run(tunnel(&["demo", "--bytes", DEMO_BYTES]), DEMO_DEADLINE);
    eprintln!("demo took {:?}", started.elapsed());
    assert_success(&out);
    for cipher in ["chacha20-poly1305", "aes-256-gcm"] {
        let line = out.stdout.lines().find(|line| line.starts_with(cipher));
        let line = line.unwrap_or_else(|| panic!("no {cipher} line in:\n{}", out.stdout));
        assert!(line.contains("8 MiB echoed"), "{line}");
        assert!(line.contains("sha256 match"), "{line}");
        assert!(
            line.contains("handshake") && line.contains("Mbit/s"),
            "{line}"
        );
    }
    assert!(out.stdout.contains("demo passed"), "{}", out.stdout);
}

// ---------------------------------------------------------------------------
// The literal commands, configured by environment, in a namespace of their own.

#[test]
fn literal_commands_carry_a_request_and_reply_in_a_namespace() {
    let mut ns = Namespace::create();
    let authorized = fixture("test-only-local.pub.pem");
    let remote_pub = fixture("test-only-remote.pub.pem");

    let target = ns.spawn("python3", &["-c", NS_TARGET], &[]);
    wait_for_output(&target.stdout, "ready", "the target");
    let remote_env = [
        (
            "TUNNEL_KEY",
            path_str(&fixture("test-only-remote.pem")).to_owned(),
        ),
        ("TUNNEL_TARGET", "127.0.0.1:7000".to_owned()),
        ("TUNNEL_AUTHORIZED_KEYS", path_str(&authorized).to_owned()),
        ("TUNNEL_LISTEN", "127.0.0.1:9000".to_owned()),
    ];
    let remote = ns.spawn(env!("CARGO_BIN_EXE_tunnel"), &["remote"], &remote_env);
    wait_for_output(&remote.stderr, "remote listening", "tunnel remote");
    let local_env = [
        (
            "TUNNEL_KEY",
            path_str(&fixture("test-only-local.pem")).to_owned(),
        ),
        ("TUNNEL_REMOTE_KEY", path_str(&remote_pub).to_owned()),
    ];
    let args = ["local", "--forward", "8080:remote:9000"];
    let local = ns.spawn(env!("CARGO_BIN_EXE_tunnel"), &args, &local_env);
    wait_for_output(&local.stderr, "local listening", "tunnel local");

    let client = ns.spawn("python3", &["-c", NS_CLIENT], &[]);
    let status = ns.wait(client.pid, QUICK);
    let reply = client.stdout.text();
    assert!(
        status.success(),
        "client failed: {}\nlocal log:\n{}\nremote log:\n{}",
        client.stderr.text(),
        local.stderr.text(),
        remote.stderr.text()
    );
    assert_eq!(reply, "reply to: GET /status through the tunnel\n");

    // The local reached the remote by the name `remote`, and the tunnel closed cleanly.
    let open = wait_for_output(&local.stderr, "tunnel open", "the local's tunnel");
    assert!(open.contains("remote=remote:9000"), "{open}");
    let closed = wait_for_output(&remote.stderr, "connection closed", "the remote's relay");
    assert!(!closed.contains("with error"), "{closed}");
}

/// Target inside the namespace: one connection, read to end of stream, answer with
/// "reply to: " and what was read, close. Gives up on its own after 30 s.
const NS_TARGET: &str = r#"
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 7000))
s.listen(4)
s.settimeout(30)
print("ready", flush=True)
c, _ = s.accept()
c.settimeout(30)
data = b""
while True:
    part = c.recv(65536)
    if not part:
        break
    data += part
c.sendall(b"reply to: " + data)
c.shutdown(socket.SHUT_WR)
c.close()
"#;

/// Client inside the namespace: send a request to the local's forward, half-close,
/// print the whole answer.
const NS_CLIENT: &str = r#"
import socket, sys
c = socket.create_connection(("127.0.0.1", 8080), timeout=10)
c.sendall(b"GET /status through the tunnel\n")
c.shutdown(socket.SHUT_WR)
reply = b""
while True:
    part = c.recv(65536)
    if not part:
        break
    reply += part
sys.stdout.buffer.write(reply)
"#;

/// A network namespace with `remote` resolving to loopback, and the processes
/// started in it; dropping it kills those processes by PID and deletes it.
struct Namespace {
    name: String,
    etc: PathBuf,
    children: Vec<Child>,
}

impl Namespace {
    fn create() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("tunnel-test-{}-{n}", std::process::id());
        let etc = PathBuf::from("/etc/netns").join(&name);
        let ns = Self {
            name,
            etc,
            children: Vec::new(),
        };
        ip(&["netns", "add", &ns.name]);
        ip(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"]);
        // `ip netns exec` mounts the files in /etc/netns/NAME over those in /etc.
        std::fs::create_dir_all(&ns.etc).unwrap();
        let hosts = "127.0.0.1 localhost\n::1 localhost\n127.0.0.1 remote\n";
        std::fs::write(ns.etc.join("hosts"), hosts).unwrap();
        ns
    }

    /// Starts `program` in the namespace with extra environment, capturing its output.
    fn spawn(&mut self, program: &str, args: &[&str], env: &[(&str, String)]) -> Spawned {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]).args(args);
        clean_env(&mut cmd);
        cmd.env("RUST_LOG", "info");
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting ip netns exec");
        let spawned = Spawned {
            pid: child.id(),
            stdout: Captured::start(child.stdout.take().unwrap()),
            stderr: Captured::start(child.stderr.take().unwrap()),
        };
        self.children.push(child);
        spawned
    }

    /// Waits for the child with `pid` to exit, killing it and failing past `deadline`.
    fn wait(&mut self, pid: u32, deadline: Duration) -> ExitStatus {
        let child = self.children.iter_mut().find(|c| c.id() == pid).unwrap();
        wait_child(child, deadline)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(&self.etc);
        // Leaves /etc/netns alone if anything else is in it.
        let _ = std::fs::remove_dir("/etc/netns");
    }
}

/// A process started in a namespace: its PID and its captured output.
struct Spawned {
    pid: u32,
    stdout: Captured,
    stderr: Captured,
}

/// Output of a child, collected by a thread as it arrives.
#[derive(Clone)]
struct Captured(Arc<Mutex<String>>);

impl Captured {
    fn start(stream: impl Read + Send + 'static) -> Self {
        let text = Arc::new(Mutex::new(String::new()));
        let sink = text.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Self(text)
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

/// Waits up to [`QUICK`] for a line containing `needle` and returns it.
fn wait_for_output(output: &Captured, needle: &str, what: &str) -> String {
    let deadline = Instant::now() + QUICK;
    loop {
        if let Some(line) = output.text().lines().find(|line| line.contains(needle)) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not print {needle:?} within {QUICK:?}; output:\n{}",
            output.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------------------
// Helpers: running the binary.

/// What a finished command left behind.
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// The binary with `args`, an environment free of `TUNNEL_*` settings, and
/// backtraces on (so a panic could not hide).
fn tunnel(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tunnel"));
    cmd.args(args);
    clean_env(&mut cmd);
    cmd.env("RUST_BACKTRACE", "1");
    cmd
}

fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TUNNEL_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUST_LOG");
}

/// `tunnel local` with a free forward and a valid pin, and `key` as its key.
fn local_with_key(key: &str) -> Command {
    tunnel(&[
        "local",
        "--forward",
        "0:127.0.0.1:9",
        "--key",
        key,
        "--remote-key",
        UNKNOWN_PIN,
    ])
}

/// `tunnel local` with valid keys and `forward` as its rule.
fn local_forward(forward: &str) -> Command {
    let mut cmd = tunnel(&["local", "--forward", forward, "--remote-key", UNKNOWN_PIN]);
    cmd.arg("--key").arg(fixture("test-only-local.pem"));
    cmd
}

/// `tunnel remote` with valid keys, listening on `listen` and relaying to `target`.
fn remote_on(listen: &str, target: &str) -> Command {
    let mut cmd = tunnel(&["remote", "--listen", listen, "--target", target]);
    cmd.arg("--key").arg(fixture("test-only-remote.pem"));
    cmd.arg("--authorized-keys")
        .arg(fixture("test-only-local.pub.pem"));
    cmd
}

fn keygen(private: &Path, extra: &[&str]) -> Command {
    let mut cmd = tunnel(&["keygen", "-o", path_str(private)]);
    cmd.args(extra);
    cmd
}

/// Runs `cmd` to its end, killing it (by PID) and failing the test past `deadline`.
fn run(mut cmd: Command, deadline: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("starting the tunnel binary");
    let stdout = reader(child.stdout.take().unwrap());
    let stderr = reader(child.stderr.take().unwrap());
    let status = wait_child(&mut child, deadline);
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn reader(mut stream: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text
    })
}

fn wait_child(child: &mut Child, deadline: Duration) -> ExitStatus {
    let end = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "process {} still running after {deadline:?}; killed",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Exit code 3 and exactly one stderr line, "error: ..." containing every needle.
fn assert_config_error(out: &Output, needles: &[&str]) {
    assert_eq!(
        out.status.code(),
        Some(3),
        "status {:?}, stderr:\n{}",
        out.status,
        out.stderr
    );
    // Test keys are checked out with the repository's file modes, so a loaded key
    // may draw the warning about its permissions first; that line is not the error.
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|line| !line.contains("private key file is readable by other users"))
        .collect();
    assert_eq!(lines.len(), 1, "expected one stderr line:\n{}", out.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{needle:?} missing from: {}",
            lines[0]
        );
    }
    assert_no_panic(out);
}

/// Exit code 2 (clap) with an "error: ..." first line naming every needle.
fn assert_usage_error(out: &Output, needles: &[&str]) {
    assert_eq!(
        out.status.code(),
        Some(2),
        "status {:?}, stderr:\n{}",
        out.status,
        out.stderr
    );
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    for needle in needles {
        assert!(
            out.stderr.contains(needle),
            "{needle:?} missing from:\n{}",
            out.stderr
        );
    }
    assert_no_panic(out);
}

fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "status {:?}, stderr:\n{}",
        out.status,
        out.stderr
    );
    assert_no_panic(out);
}

fn assert_no_panic(out: &Output) {
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains("panicked"), "{text}");
        assert!(!text.contains("stack backtrace"), "{text}");
        assert!(!text.contains("RUST_BACKTRACE"), "{text}");
    }
}

/// The value after `label` on the stdout line starting with it.
fn stdout_line_value(out: &Output, label: &str) -> String {
    let line = out.stdout.lines().find_map(|line| line.strip_prefix(label));
    line.unwrap_or_else(|| panic!("no {label:?} line in:\n{}", out.stdout))
        .trim()
        .to_owned()
}

/// What `tunnel fingerprint` prints for `files`: one fingerprint per file, in order,
/// after checking each line names its file and a 2048-bit size.
fn fingerprints(files: &[&Path]) -> Vec<String> {
    let mut cmd = tunnel(&["fingerprint"]);
    cmd.args(files);
    let out = run(cmd, QUICK);
    assert_success(&out);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), files.len(), "{}", out.stdout);
    lines
        .iter()
        .zip(files)
        .map(|(line, file)| {
            let (fingerprint, rest) = line.split_once("  ").expect("two spaces after it");
            assert_eq!(rest, format!("{} (2048 bits)", file.display()), "{line}");
            fingerprint.to_owned()
        })
        .collect()
}

/// `SHA256:` plus the openssl pipeline's digest of a public key file.
fn openssl_fingerprint(public: &Path) -> String {
    let pipeline = "openssl pkey -pubin -in \"$1\" -outform DER \
                    | openssl dgst -sha256 -binary | base64 | tr -d '='";
    let output = Command::new("sh")
        .args(["-c", pipeline, "sh", path_str(public)])
        .output()
        .expect("running the openssl pipeline");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let digest = String::from_utf8(output.stdout).unwrap();
    assert_eq!(digest.trim().len(), 43, "{digest}");
    format!("SHA256:{}", digest.trim())
}

// ---------------------------------------------------------------------------
// Helpers: files and openssl.

/// The permission bits of `path`, in octal as `ls` would show them.
fn mode_of(path: &Path) -> String {
    format!(
        "{:o}",
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    )
}
