//! The resumed handshake under attack, over loopback sockets: a ticket from a real
//! full handshake, then resumed handshakes through a proxy that flips a bit in one
//! message, rewrites the cipher offer, or replays a recorded local flight. Each
//! must fail with the precise error and give the attacker no working connection.
//! One-time tickets, which resumed handshakes leave, are checked the same way, and
//! for being spent by their first use. The last tests run the real roles: a
//! local spends one-time tickets, and after the remote restarts, falls back to a
//! full handshake without a client noticing.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tunnel::crypto::CipherPolicy;
use tunnel::handshake::local::LocalParams;
use tunnel::handshake::resume::{self, Ticket, TicketKind, TicketStore};
use tunnel::handshake::{self, Established, HandshakeError, Setup};
use tunnel::record::RecordType;

use common::{Logs, PROMPT, fingerprint, frame, key, remote_handshake};

type Outcome = Result<Established, HandshakeError>;

#[tokio::test]
async fn a_resumed_handshake_gives_both_sides_matching_keys() {
    let (ticket, store) = full_handshake().await;
    let (local, remote) = resumed_through(&ticket, &store, Edit::None).await;
    let (mut local, mut remote) = (local.unwrap(), remote.unwrap());
    assert_eq!(local.suite, remote.suite);
    assert_eq!(local.peer, fingerprint("remote"));
    assert_eq!(remote.peer, fingerprint("local"));
    assert_eq!(
        (local.setup, remote.setup),
        (Setup::Resumed, Setup::Resumed)
    );
    let next = TicketKind::OneTime {
        left: resume::ONE_TIME_CHAIN - 1,
    };
    assert_eq!(local.ticket.as_ref().map(Ticket::kind), Some(next));
    assert_eq!(remote.ticket.as_ref().map(Ticket::kind), Some(next));
    assert_eq!(store.len(), 2, "the remote kept no one-time ticket");
    let record = local
        .sealer
        .seal_to_vec(RecordType::Data, b"resumed")
        .unwrap();
    let mut body = record[4..].to_vec();
    let header = record[..4].try_into().unwrap();
    let (_, range) = remote.opener.open_in_place(&header, &mut body).unwrap();
    assert_eq!(&body[range], b"resumed");
}

#[tokio::test]
async fn a_changed_key_share_in_the_resume_hello_fails_the_remote_proof() {
    let (ticket, store) = full_handshake().await;
    let (local, remote) =
        resumed_through(&ticket, &store, Edit::FlipFirst(frame::RESUME_HELLO)).await;
    expect_bad_finished(local, "remote");
    // The remote only sees the local give up.
    assert!(
        matches!(remote, Err(HandshakeError::Io(_))),
        "{:?}",
        remote.err()
    );
}

#[tokio::test]
async fn a_changed_ticket_id_is_unknown_to_the_remote() {
    let (ticket, store) = full_handshake().await;
    let (local, remote) =
        resumed_through(&ticket, &store, Edit::FlipLast(frame::RESUME_HELLO)).await;
    expect_unknown_ticket(local);
    expect_unknown_ticket(remote);
}

#[tokio::test]
async fn a_rewritten_cipher_offer_fails_the_remote_proof() {
    let (ticket, store) = full_handshake().await;
    let (local, _) = resumed_through(&ticket, &store, Edit::DropFirstCipher).await;
    expect_bad_finished(local, "remote");
}

#[tokio::test]
async fn a_changed_resume_accept_fails_the_remote_proof() {
    let (ticket, store) = full_handshake().await;
    let (local, _) = resumed_through(&ticket, &store, Edit::FlipFirst(frame::RESUME_ACCEPT)).await;
    expect_bad_finished(local, "remote");
}

#[tokio::test]
async fn a_changed_remote_finished_is_refused_by_the_local() {
    let (ticket, store) = full_handshake().await;
    let (local, _) = resumed_through(&ticket, &store, Edit::FlipLast(frame::REMOTE_FINISHED)).await;
    expect_bad_finished(local, "remote");
}

#[tokio::test]
async fn a_changed_local_finished_is_refused_by_the_remote() {
    let (ticket, store) = full_handshake().await;
    let (local, remote) =
        resumed_through(&ticket, &store, Edit::FlipLast(frame::LOCAL_FINISHED)).await;
    // The local has sent its last message and does not wait for a verdict.
    assert!(local.is_ok(), "{:?}", local.err());
    expect_bad_finished(remote, "local");
}

#[tokio::test]
async fn a_replayed_local_flight_cannot_resume() {
    // Record everything a genuine local sends in a resumed handshake, then send it
    // again on a new connection: the remote answers with a fresh key share, so the
    // recorded proof no longer matches and no connection is established.
    let (ticket, store) = full_handshake().await;
    let (recorded, local, remote) = recorded_resumption(&ticket, &store).await;
    assert!(
        local.is_ok() && remote.is_ok(),
        "the recorded handshake itself failed"
    );

    let (remote_addr, remote) = spawn_remote(store.clone());
    let mut attacker = TcpStream::connect(remote_addr.await).await.unwrap();
    attacker.write_all(&recorded).await.unwrap();
    let remote = tokio::time::timeout(PROMPT, remote)
        .await
        .expect("the remote neither finished nor failed")
        .unwrap();
    expect_bad_finished(remote, "local");
}

#[tokio::test]
async fn a_one_time_ticket_resumes_without_a_key_exchange_and_only_once() {
    let (ticket, store) = full_handshake().await;
    let one_time = one_time_ticket(&ticket, &store).await;
    let (local, remote) = resumed_through(&one_time, &store, Edit::None).await;
    let (mut local, mut remote) = (local.unwrap(), remote.unwrap());
    assert_eq!(
        (local.setup, remote.setup),
        (Setup::OneTime, Setup::OneTime)
    );
    let record = remote
        .sealer
        .seal_to_vec(RecordType::Data, b"one-time")
        .unwrap();
    let mut body = record[4..].to_vec();
    let header = record[..4].try_into().unwrap();
    let (_, range) = local.opener.open_in_place(&header, &mut body).unwrap();
    assert_eq!(&body[range], b"one-time");

    // The remote forgot the ticket when it was presented: a second use fails.
    let (local, remote) = resumed_through(&one_time, &store, Edit::None).await;
    expect_unknown_ticket(local);
    expect_unknown_ticket(remote);
}

#[tokio::test]
async fn a_replayed_one_time_flight_finds_the_ticket_spent() {
    let (ticket, store) = full_handshake().await;
    let one_time = one_time_ticket(&ticket, &store).await;
    let (recorded, local, remote) = recorded_resumption(&one_time, &store).await;
    assert!(
        local.is_ok() && remote.is_ok(),
        "the recorded handshake itself failed"
    );

    // The preface and ResumeHello: the remote must refuse before anything else.
    let hello_len = u16::from_be_bytes([
        recorded[frame::PREFACE_LEN + 1],
        recorded[frame::PREFACE_LEN + 2],
    ]);
    let hello_end = frame::PREFACE_LEN + 3 + usize::from(hello_len);
    let (remote_addr, remote) = spawn_remote(store.clone());
    let mut attacker = TcpStream::connect(remote_addr.await).await.unwrap();
    attacker.write_all(&recorded[..hello_end]).await.unwrap();
    let remote = tokio::time::timeout(PROMPT, remote)
        .await
        .expect("the remote neither finished nor failed")
        .unwrap();
    expect_unknown_ticket(remote);
    let mut answer = Vec::new();
    attacker.read_to_end(&mut answer).await.unwrap();
    assert_eq!(
        answer[frame::PREFACE_LEN..frame::PREFACE_LEN + 4],
        [frame::ALERT, 0, 1, 4],
        "the remote must answer with Alert(unknown ticket)"
    );
}

#[tokio::test]
async fn a_changed_nonce_with_a_one_time_ticket_fails_the_remote_proof() {
    let (ticket, store) = full_handshake().await;
    let one_time = one_time_ticket(&ticket, &store).await;
    let (local, remote) =
        resumed_through(&one_time, &store, Edit::FlipFirst(frame::RESUME_HELLO)).await;
    expect_bad_finished(local, "remote");
    assert!(
        matches!(remote, Err(HandshakeError::Io(_))),
        "{:?}",
        remote.err()
    );
    // The attempt spent the ticket all the same.
    let (local, _) = resumed_through(&one_time, &store, Edit::None).await;
    expect_unknown_ticket(local);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_ticket_presented_twice_at_once_works_for_one_connection_only() {
    for _ in 0..10 {
        let (ticket, store) = full_handshake().await;
        let one_time = one_time_ticket(&ticket, &store).await;
        let (first_addr, first) = spawn_remote(store.clone());
        let (second_addr, second) = spawn_remote(store.clone());
        let (first_addr, second_addr) = (first_addr.await, second_addr.await);
        let ciphers = CipherPolicy::default();
        let attempt = |addr| {
            let (one_time, ciphers) = (one_time.clone(), ciphers.clone());
            async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                resume::local(&mut stream, &one_time, &ciphers).await
            }
        };
        let (a, b) = tokio::join!(attempt(first_addr), attempt(second_addr));
        let outcomes = [a, b];
        let ok = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        let refused = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, Err(HandshakeError::UnknownTicket)))
            .count();
        let errors: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
        assert_eq!((ok, refused), (1, 1), "{errors:?}");
        let remotes = [first.await.unwrap(), second.await.unwrap()];
        assert_eq!(remotes.iter().filter(|outcome| outcome.is_ok()).count(), 1);
    }
}

#[tokio::test]
async fn a_chain_of_one_time_tickets_ends_and_the_next_connection_uses_x25519() {
    let (ticket, store) = full_handshake().await;
    let mut next = one_time_ticket(&ticket, &store).await;
    for left in (0..resume::ONE_TIME_CHAIN).rev() {
        assert_eq!(next.kind(), TicketKind::OneTime { left });
        let (local, remote) = resumed_through(&next, &store, Edit::None).await;
        let (local, remote) = (local.unwrap(), remote.unwrap());
        assert_eq!(
            (local.setup, remote.setup),
            (Setup::OneTime, Setup::OneTime)
        );
        match local.ticket {
            Some(ticket) => next = ticket,
            None => {
                assert_eq!(left, 0, "the chain ended early");
                assert!(remote.ticket.is_none(), "the remote continued the chain");
                // The session ticket still works, with a key exchange.
                let (local, _) = resumed_through(&ticket, &store, Edit::None).await;
                assert_eq!(local.unwrap().setup, Setup::Resumed);
                return;
            }
        }
    }
    panic!("the chain of one-time tickets did not end");
}

#[tokio::test]
async fn a_local_spends_one_time_tickets_between_x25519_exchanges() {
    let logs = Logs::default();
    let _guard = logs.install();
    let target = common::echo_target().await;
    let remote = common::spawn_remote(common::remote_config(target)).await;
    let local = common::spawn_local(common::local_config(remote.addr)).await;
    for _ in 0..12 {
        echo(local.addr).await;
    }
    let opened = |kind: &'static str| {
        move |line: &str| {
            line.contains("tunnel::remote: tunnel open")
                && line.contains(&format!("handshake={kind}"))
        }
    };
    logs.wait_for_count(1, opened("full")).await;
    logs.wait_for_count(1, opened("resumed")).await;
    logs.wait_for_count(4, opened("one-time ticket")).await;
}

#[tokio::test]
async fn a_restarted_remote_makes_the_local_fall_back_to_a_full_handshake() {
    let logs = Logs::default();
    let _guard = logs.install();
    let target = common::echo_target().await;
    let first = common::spawn_remote(common::remote_config(target)).await;
    let addr = first.addr;
    let local = common::spawn_local(common::local_config(addr)).await;
    echo(local.addr).await;

    // A new remote on the same port has no tickets: every pooled tunnel the local
    // made is gone, and its tickets, one-time and session, are unknown.
    let full = |line: &str| {
        line.contains("tunnel::remote: tunnel open") && line.contains("handshake=full")
    };
    let before = logs.lines(full).len();
    first.stop().await;
    let mut config = common::remote_config(target);
    config.listen = addr;
    let _second = common::spawn_remote(config).await;
    for _ in 0..6 {
        echo(local.addr).await;
    }
    logs.wait_for_count(before + 1, full).await;
    let refused = |line: &str| line.contains("resumption refused: ticket unknown");
    let refusals = logs.lines(refused);
    assert!(!refusals.is_empty(), "no stale ticket was refused");
    assert!(refusals[0].contains("INFO"), "{}", refusals[0]);
    // The dials that find their tickets refused wait for one full handshake and
    // resume with its ticket, instead of each paying for RSA.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        logs.lines(full).len(),
        before + 1,
        "more than one full handshake"
    );
}

/// Echoes a few bytes through the local role at `addr`.
async fn echo(addr: SocketAddr) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(b"ping").await?;
        stream.shutdown().await?;
        let mut back = Vec::new();
        stream.read_to_end(&mut back).await?;
        std::io::Result::Ok(back)
    };
    let back = tokio::time::timeout(PROMPT * 2, exchange)
        .await
        .expect("the echo stalled")
        .expect("the echo failed");
    assert_eq!(back, b"ping");
}

fn expect_unknown_ticket(outcome: Outcome) {
    assert!(
        matches!(outcome, Err(HandshakeError::UnknownTicket)),
        "expected an unknown ticket, got {:?}",
        outcome.err()
    );
}

fn expect_bad_finished(outcome: Outcome, signer: &str) {
    match outcome {
        Err(HandshakeError::BadFinished { signer: got }) if got == signer => {}
        other => panic!("expected a bad {signer} proof, got {:?}", other.err()),
    }
}

/// A full handshake between the test keys; returns the local's ticket and the
/// remote's store holding its copy.
async fn full_handshake() -> (Ticket, Arc<TicketStore>) {
    let store = Arc::new(TicketStore::new());
    let (addr, remote) = spawn_remote(store.clone());
    let mut stream = TcpStream::connect(addr.await).await.unwrap();
    let key = key("local");
    let ciphers = CipherPolicy::default();
    let params = LocalParams {
        key: &key,
        remote_pin: fingerprint("remote"),
        ciphers: &ciphers,
    };
    let local = handshake::local::run(&mut stream, &params).await.unwrap();
    tokio::time::timeout(PROMPT, remote)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(store.len(), 1, "the remote kept no ticket");
    (
        local.ticket.expect("a full handshake issues a ticket"),
        store,
    )
}

/// The one-time ticket left by a resumed handshake with the session `ticket`.
async fn one_time_ticket(ticket: &Ticket, store: &Arc<TicketStore>) -> Ticket {
    let (local, remote) = resumed_through(ticket, store, Edit::None).await;
    remote.expect("the remote failed to resume");
    local
        .expect("the local failed to resume")
        .ticket
        .expect("a resumed handshake leaves a one-time ticket")
}

/// Starts a remote handshake on a fresh listener; yields its address, then the
/// outcome of the first connection's handshake. A ticket it issues goes to `store`.
fn spawn_remote(
    store: Arc<TicketStore>,
) -> (
    impl Future<Output = SocketAddr>,
    tokio::task::JoinHandle<Outcome>,
) {
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        addr_tx.send(listener.local_addr().unwrap()).unwrap();
        let (mut stream, _) = listener.accept().await.unwrap();
        let outcome = remote_handshake(&mut stream, Some(&store)).await;
        if let Ok(established) = &outcome
            && let Some(ticket) = established.ticket.clone()
        {
            store.insert(ticket);
        }
        outcome
    });
    (async move { addr_rx.await.unwrap() }, task)
}

/// The one change the proxy makes to a resumed handshake.
#[derive(Debug, Clone, Copy)]
enum Edit {
    None,
    /// Flip a bit in the first body byte of the frame of this type.
    FlipFirst(u8),
    /// Flip a bit in the last body byte of the frame of this type.
    FlipLast(u8),
    /// Remove the first offered cipher from the ResumeHello.
    DropFirstCipher,
}

/// Runs a resumed handshake with `ticket` through a proxy applying `edit`.
async fn resumed_through(
    ticket: &Ticket,
    store: &Arc<TicketStore>,
    edit: Edit,
) -> (Outcome, Outcome) {
    let (remote_addr, remote) = spawn_remote(store.clone());
    let remote_addr = remote_addr.await;
    let proxy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    tokio::spawn(async move {
        let (downstream, _) = proxy.accept().await.unwrap();
        let upstream = TcpStream::connect(remote_addr).await.unwrap();
        let (down_read, down_write) = downstream.into_split();
        let (up_read, up_write) = upstream.into_split();
        tokio::spawn(pump(down_read, up_write, edit));
        tokio::spawn(pump(up_read, down_write, edit));
    });

    let mut stream = TcpStream::connect(proxy_addr).await.unwrap();
    let ciphers = CipherPolicy::default();
    let local = tokio::time::timeout(PROMPT, resume::local(&mut stream, ticket, &ciphers))
        .await
        .expect("the local side hung");
    if local.is_err() {
        stream.shutdown().await.ok();
    }
    drop(stream);
    let remote = tokio::time::timeout(PROMPT, remote)
        .await
        .expect("the remote side hung")
        .unwrap();
    (local, remote)
}

/// Runs a genuine resumed handshake and returns every byte the local sent.
async fn recorded_resumption(
    ticket: &Ticket,
    store: &Arc<TicketStore>,
) -> (Vec<u8>, Outcome, Outcome) {
    let (remote_addr, remote) = spawn_remote(store.clone());
    let stream = TcpStream::connect(remote_addr.await).await.unwrap();
    let mut recording = Recording {
        inner: stream,
        sent: Vec::new(),
    };
    let ciphers = CipherPolicy::default();
    let local = resume::local(&mut recording, ticket, &ciphers).await;
    let remote = tokio::time::timeout(PROMPT, remote).await.unwrap().unwrap();
    (recording.sent, local, remote)
}

/// A stream that keeps a copy of everything written to it.
struct Recording {
    inner: TcpStream,
    sent: Vec<u8>,
}

impl AsyncRead for Recording {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Recording {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(written)) = polled {
            self.sent.extend_from_slice(&buf[..written]);
        }
        polled
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Copies one direction: the preface, then handshake frames with `edit` applied,
/// then anything else as it comes.
async fn pump<R, W>(mut from: R, mut to: W, edit: Edit)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let copied = async {
        let mut preface = [0u8; frame::PREFACE_LEN];
        from.read_exact(&mut preface).await?;
        to.write_all(&preface).await?;
        loop {
            let mut header = [0u8; 3];
            from.read_exact(&mut header).await?;
            let len = usize::from(u16::from_be_bytes([header[1], header[2]]));
            let mut body = vec![0u8; len];
            from.read_exact(&mut body).await?;
            let kind = header[0];
            body = apply(edit, kind, body);
            let mut frame = vec![kind];
            frame.extend_from_slice(&(body.len() as u16).to_be_bytes());
            frame.extend_from_slice(&body);
            to.write_all(&frame).await?;
            if matches!(
                kind,
                frame::LOCAL_FINISHED | frame::REMOTE_FINISHED | frame::ALERT
            ) {
                break;
            }
        }
        tokio::io::copy(&mut from, &mut to).await?;
        std::io::Result::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), copied).await;
    let _ = to.shutdown().await;
}

fn apply(edit: Edit, kind: u8, mut body: Vec<u8>) -> Vec<u8> {
    match edit {
        Edit::FlipFirst(target) if target == kind => body[0] ^= 0x01,
        Edit::FlipLast(target) if target == kind => *body.last_mut().unwrap() ^= 0x01,
        Edit::DropFirstCipher if kind == frame::RESUME_HELLO => {
            // share (32), flags (1), count (1), ids, ticket id (16)
            let count = usize::from(body[33]);
            assert!(count >= 2, "the default offer lists both ciphers");
            body.remove(34);
            body[33] = (count - 1) as u8;
        }
        _ => {}
    }
    body
}
