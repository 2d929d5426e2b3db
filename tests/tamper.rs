//! Active attacks on the tunnel connection: a proxy between the local and the remote
//! role that forwards the handshake and then alters the record stream.
//!
//! The proxy understands just enough of the wire format to aim: the 8-byte preface,
//! handshake frames (`type`, u16 BE `len`, body) up to the last frame of each side's
//! flight, then records (u32 BE length, that many bytes). It applies one fault per
//! test: a flipped bit, a replayed, dropped or reordered record, a cut with FIN in
//! both directions, a rewritten cipher offer in LocalHello, or bytes appended to the
//! remote's last handshake frame. One more mode changes no byte but delivers the
//! local's last handshake frame and first records in one write.
//!
//! Every fault must end the connection with an error, and nothing altered may reach
//! either end: a recording target and the client each keep what they received, which
//! must be a prefix of what the other end sent. The exact failure is checked twice:
//! from the roles' log lines, and by driving the handshake and record layer directly
//! through the proxy and matching the error variant. Key and listener abuse are in
//! `handshake.rs` and `limits.rs`.

mod common;

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tunnel::crypto::CipherPolicy;
use tunnel::handshake::{self, Established, HandshakeError, local::LocalParams};
use tunnel::record::{HEADER_LEN, RecordError, RecordType, parse_header};

use common::{Logs, PROMPT, fingerprint, frame, key, remote_handshake};

// ---------------------------------------------------------------------------------
// Full roles: client -> local -> proxy -> remote -> recording target.

#[tokio::test]
async fn untampered_stream_passes_the_proxy_intact() {
    // The control: the harness itself delivers everything and ends cleanly, so a
    // failure in the tests below comes from the fault alone.
    assert_delivered_intact(Fault::None, Direction::LocalToRemote).await;
}

#[tokio::test]
async fn records_arriving_with_the_last_handshake_frame_are_relayed() {
    // The remote reads its handshake ahead into a buffer; the opening record and
    // the start of the first data record, read along with LocalFinished or
    // LocalAuth, must reach the target ahead of the rest.
    assert_delivered_intact(Fault::Coalesce, Direction::LocalToRemote).await;
}

#[tokio::test]
async fn bytes_after_the_remote_flight_fail_the_local_handshake() {
    // Before the tunnel opens a remote sends nothing past its last handshake frame,
    // so the local refuses such bytes instead of dropping or relaying them.
    let run = Scenario::run(Fault::Trail, Direction::RemoteToLocal).await;

    assert!(run.client_received.is_empty(), "the client received bytes");
    assert_eq!(run.client_end, End::Reset);
    assert_eq!(run.target.accepted, 0, "the target was reached");

    let extra = TRAILING.len();
    run.logs
        .wait_for("local", |line| {
            line.contains("handshake failed")
                && line.contains(&format!(
                    "the remote sent {extra} bytes after its last handshake message"
                ))
        })
        .await;
}

#[tokio::test]
async fn flipped_bit_toward_the_remote_is_caught() {
    let fault = Fault::Flip { record: 2 };
    check_record_fault(fault, Direction::LocalToRemote, RecordError::Authentication).await;
}

#[tokio::test]
async fn flipped_bit_toward_the_local_is_caught() {
    let fault = Fault::Flip { record: 2 };
    check_record_fault(fault, Direction::RemoteToLocal, RecordError::Authentication).await;
}

#[tokio::test]
async fn replayed_record_toward_the_remote_is_caught() {
    let fault = Fault::Replay { record: 2 };
    check_record_fault(fault, Direction::LocalToRemote, RecordError::Authentication).await;
}

#[tokio::test]
async fn replayed_record_toward_the_local_is_caught() {
    let fault = Fault::Replay { record: 2 };
    check_record_fault(fault, Direction::RemoteToLocal, RecordError::Authentication).await;
}

#[tokio::test]
async fn dropped_record_toward_the_remote_is_caught() {
    let fault = Fault::Drop { record: 2 };
    check_record_fault(fault, Direction::LocalToRemote, RecordError::Authentication).await;
}

#[tokio::test]
async fn dropped_record_toward_the_local_is_caught() {
    let fault = Fault::Drop { record: 2 };
    check_record_fault(fault, Direction::RemoteToLocal, RecordError::Authentication).await;
}

#[tokio::test]
async fn swapped_records_toward_the_remote_are_caught() {
    let fault = Fault::Swap { record: 2 };
    check_record_fault(fault, Direction::LocalToRemote, RecordError::Authentication).await;
}

#[tokio::test]
async fn swapped_records_toward_the_local_are_caught() {
    let fault = Fault::Swap { record: 2 };
    check_record_fault(fault, Direction::RemoteToLocal, RecordError::Authentication).await;
}

#[tokio::test]
async fn cut_toward_the_remote_is_reported_as_truncation() {
    let fault = Fault::Cut { after: CUT_AFTER };
    check_record_fault(fault, Direction::LocalToRemote, RecordError::Truncated).await;
}

#[tokio::test]
async fn cut_toward_the_local_is_reported_as_truncation() {
    let fault = Fault::Cut { after: CUT_AFTER };
    check_record_fault(fault, Direction::RemoteToLocal, RecordError::Truncated).await;
}

#[tokio::test]
async fn reordered_cipher_offer_fails_the_handshake() {
    check_offer_fault(OfferEdit::Reverse).await;
}

#[tokio::test]
async fn shortened_cipher_offer_fails_the_handshake() {
    check_offer_fault(OfferEdit::RemoveFirst).await;
}

/// Runs `fault`, one that changes no byte, through both roles and checks that
/// both streams arrived whole and both ends closed cleanly.
async fn assert_delivered_intact(fault: Fault, direction: Direction) {
    let run = Scenario::run(fault, direction).await;
    assert_eq!(run.target.received, client_data(), "target got other bytes");
    assert_eq!(run.client_received, target_data(), "client got other bytes");
    assert_eq!(run.client_end, End::Clean);
    assert_eq!(run.target.end, Some(End::Clean));
}

/// Runs a record fault through both roles and checks that the connection fails,
/// that neither end received an altered byte, and that the role receiving the
/// faulty direction logged `expected`.
async fn check_record_fault(fault: Fault, direction: Direction, expected: RecordError) {
    let run = Scenario::run(fault, direction).await;
    if std::env::var_os("TAMPER_DEBUG").is_some() {
        eprintln!(
            "target {:?} {} client {:?} {}",
            run.target.end,
            run.target.received.len(),
            run.client_end,
            run.client_received.len()
        );
        eprintln!("{}", String::from_utf8_lossy(&run.logs.0.lock().unwrap()));
    }

    assert_prefix(&run.target.received, &client_data(), "target");
    assert_prefix(&run.client_received, &target_data(), "client");
    match direction {
        Direction::LocalToRemote => assert!(
            run.target.received.len() < client_data().len(),
            "the target received the whole stream despite {fault:?}"
        ),
        Direction::RemoteToLocal => assert!(
            run.client_received.len() < target_data().len(),
            "the client received the whole stream despite {fault:?}"
        ),
    }
    assert_eq!(
        run.client_end,
        End::Reset,
        "the client must see a reset after {fault:?}"
    );
    assert_ne!(
        run.target.end,
        Some(End::Clean),
        "the target saw a clean end"
    );

    let detector = match direction {
        Direction::LocalToRemote => "remote",
        Direction::RemoteToLocal => "local",
    };
    let wanted = expected.to_string();
    run.logs
        .wait_for(detector, |line| {
            line.contains("connection closed with error") && line.contains(&wanted)
        })
        .await;
}

/// Runs a rewritten offer through both roles: the handshake must fail on the local
/// side with the remote's signature, the client be reset, and the target untouched.
async fn check_offer_fault(edit: OfferEdit) {
    let run = Scenario::run(Fault::Offer(edit), Direction::LocalToRemote).await;

    assert!(run.client_received.is_empty(), "the client received bytes");
    assert_eq!(run.client_end, End::Reset);
    assert_eq!(run.target.accepted, 0, "the target was reached");

    let wanted = HandshakeError::BadSignature { signer: "remote" }.to_string();
    run.logs
        .wait_for("local", |line| {
            line.contains("handshake failed") && line.contains(&wanted)
        })
        .await;
    run.logs
        .wait_for("remote", |line| line.contains("handshake failed"))
        .await;
}

/// What one end-to-end run through the proxy produced.
struct Scenario {
    client_received: Vec<u8>,
    client_end: End,
    target: TargetRecord,
    logs: Logs,
}

impl Scenario {
    /// Starts target, remote, proxy and local, sends [`client_data`] one way while
    /// the target sends [`target_data`] the other, and collects what arrived.
    async fn run(fault: Fault, direction: Direction) -> Self {
        let logs = Logs::default();
        let _guard = logs.install();

        let target = RecordingTarget::start().await;
        let remote = common::spawn_remote(common::remote_config(target.addr)).await;
        let proxy = Proxy::start(remote.addr, fault, direction).await;
        let local = common::spawn_local(common::local_config(proxy.addr)).await;

        let client = TcpStream::connect(local.addr).await.unwrap();
        let (mut reader, writer) = client.into_split();
        let (read_done, read_done_rx) = tokio::sync::oneshot::channel();
        let sending = tokio::spawn(send_paced(writer, client_data(), read_done_rx));
        let mut client_received = Vec::new();
        let client_end = tokio::time::timeout(SCENARIO_LIMIT, async {
            read_to_end(&mut reader, &mut client_received).await
        })
        .await
        .expect("the client was neither served to the end nor reset");
        let _ = read_done.send(());
        let sent = tokio::time::timeout(PROMPT, sending)
            .await
            .expect("the client's writes neither finished nor failed")
            .unwrap();
        let client_end = combine(client_end, sent);

        // Let the target notice the end of its connection too.
        let mut record = target.record();
        for _ in 0..(PROMPT.as_millis() / 20) {
            if record.accepted == 0 || record.end.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            record = target.record();
        }

        Self {
            client_received,
            client_end,
            target: record,
            logs,
        }
    }
}

// ---------------------------------------------------------------------------------
// The handshake and record layer driven directly through the proxy.

#[tokio::test]
async fn direct_record_faults_fail_with_the_exact_error() {
    use Direction::{LocalToRemote, RemoteToLocal};
    let all = |n: usize| (0..n).collect::<Vec<_>>();
    let cases = [
        (Fault::None, all(DIRECT_RECORDS), None),
        (
            Fault::Flip { record: 2 },
            all(2),
            Some(RecordError::Authentication),
        ),
        (
            Fault::Replay { record: 2 },
            all(3),
            Some(RecordError::Authentication),
        ),
        (
            Fault::Drop { record: 2 },
            all(2),
            Some(RecordError::Authentication),
        ),
        (
            Fault::Swap { record: 2 },
            all(2),
            Some(RecordError::Authentication),
        ),
    ];
    for direction in [LocalToRemote, RemoteToLocal] {
        for (fault, opened, error) in &cases {
            let (got, ending) = direct_records(*fault, direction).await;
            let wanted: Vec<Vec<u8>> = opened.iter().map(|&i| direct_payload(i)).collect();
            assert_eq!(got, wanted, "{fault:?} {direction:?}: opened payloads");
            match error {
                None => assert_eq!(ending, Ending::Closed, "{fault:?} {direction:?}"),
                Some(error) => assert_eq!(
                    ending,
                    Ending::Failed(error.clone()),
                    "{fault:?} {direction:?}"
                ),
            }
        }
    }
}

#[tokio::test]
async fn direct_rewritten_offer_fails_the_remote_signature() {
    for edit in [OfferEdit::Reverse, OfferEdit::RemoveFirst] {
        let (local, remote) = direct_handshake(Fault::Offer(edit), Direction::LocalToRemote).await;
        match local {
            Err(HandshakeError::BadSignature { signer: "remote" }) => {}
            other => panic!(
                "{edit:?}: local expected BadSignature, got {:?}",
                other.err()
            ),
        }
        // The local gives up before LocalAuth; the remote only sees the stream end.
        match remote {
            Err(HandshakeError::Io(err)) => assert!(
                matches!(
                    err.kind(),
                    ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                ),
                "{edit:?}: {err}"
            ),
            other => panic!("{edit:?}: remote expected Io, got {:?}", other.err()),
        }
    }
}

/// How the receiving side of a direct record exchange stopped.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// A `Close` record opened.
    Closed,
    /// A record was rejected.
    Failed(RecordError),
    /// The stream ended between records without a `Close`.
    EndOfStream,
}

/// Handshakes through the proxy, then seals [`DIRECT_RECORDS`] data records and a
/// `Close` in `direction` and opens what arrives. Returns the opened payloads and
/// how the receiver stopped.
async fn direct_records(fault: Fault, direction: Direction) -> (Vec<Vec<u8>>, Ending) {
    let (local, remote, mut local_stream, mut remote_stream) =
        direct_streams(fault, direction).await;
    let (mut local, mut remote) = (local.unwrap(), remote.unwrap());
    let (sender, receiver) = match direction {
        Direction::LocalToRemote => (
            (&mut local_stream, &mut local),
            (&mut remote_stream, &mut remote),
        ),
        Direction::RemoteToLocal => (
            (&mut remote_stream, &mut remote),
            (&mut local_stream, &mut local),
        ),
    };

    let (stream, established) = sender;
    for index in 0..DIRECT_RECORDS {
        let sealed = established
            .sealer
            .seal_to_vec(RecordType::Data, &direct_payload(index))
            .unwrap();
        stream.write_all(&sealed).await.unwrap();
    }
    let close = established
        .sealer
        .seal_to_vec(RecordType::Close, &[])
        .unwrap();
    stream.write_all(&close).await.unwrap();
    stream.flush().await.unwrap();

    let (stream, established) = receiver;
    tokio::time::timeout(PROMPT, open_all(stream, established))
        .await
        .expect("the receiver neither failed nor finished")
}

/// Opens records from `stream` until a `Close`, an error or the end of the stream.
async fn open_all(stream: &mut TcpStream, established: &mut Established) -> (Vec<Vec<u8>>, Ending) {
    let mut opened = Vec::new();
    loop {
        let mut header = [0u8; HEADER_LEN];
        if stream.read_exact(&mut header).await.is_err() {
            return (opened, Ending::EndOfStream);
        }
        let len = match parse_header(&header) {
            Ok(len) => len,
            Err(err) => return (opened, Ending::Failed(err)),
        };
        let mut body = vec![0u8; len];
        if stream.read_exact(&mut body).await.is_err() {
            return (opened, Ending::EndOfStream);
        }
        match established.opener.open_in_place(&header, &mut body) {
            Ok((RecordType::Data, range)) => opened.push(body[range].to_vec()),
            Ok((RecordType::Close, _)) => return (opened, Ending::Closed),
            Ok((kind, _)) => panic!("unexpected {kind:?} record"),
            Err(err) => return (opened, Ending::Failed(err)),
        }
    }
}

type HandshakeResult = Result<Established, HandshakeError>;

/// Runs both handshake roles through a proxy applying `fault`; returns the local's
/// and the remote's results.
async fn direct_handshake(
    fault: Fault,
    direction: Direction,
) -> (HandshakeResult, HandshakeResult) {
    let (local, remote, local_stream, remote_stream) = direct_streams(fault, direction).await;
    drop((local_stream, remote_stream));
    (local, remote)
}

/// Both handshake results and both sockets (local's to the proxy, remote's from it).
async fn direct_streams(
    fault: Fault,
    direction: Direction,
) -> (HandshakeResult, HandshakeResult, TcpStream, TcpStream) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let proxy = Proxy::start(listener.local_addr().unwrap(), fault, direction).await;
    let remote = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let result = remote_handshake(&mut stream, None).await;
        (result, stream)
    });

    let key = key("local");
    let ciphers = CipherPolicy::default();
    let params = LocalParams {
        key: &key,
        remote_pin: fingerprint("remote"),
        ciphers: &ciphers,
    };
    let mut local_stream = TcpStream::connect(proxy.addr).await.unwrap();
    let local = tokio::time::timeout(PROMPT, handshake::local::run(&mut local_stream, &params))
        .await
        .expect("local handshake hung");
    if local.is_err() {
        // As the local role does: give up on the connection.
        local_stream.shutdown().await.ok();
    }
    let (remote, remote_stream) = tokio::time::timeout(PROMPT, remote)
        .await
        .expect("remote handshake hung")
        .unwrap();
    (local, remote, local_stream, remote_stream)
}

fn direct_payload(index: usize) -> Vec<u8> {
    format!("direct record number {index}").into_bytes()
}

// ---------------------------------------------------------------------------------
// The tampering proxy.

/// Which way the fault is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    LocalToRemote,
    RemoteToLocal,
}

/// The one change the proxy makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Forward everything as it is.
    None,
    /// Flip one bit in the middle of this record's sealed body.
    Flip { record: usize },
    /// Send this record twice.
    Replay { record: usize },
    /// Leave this record out.
    Drop { record: usize },
    /// Send this record after the next one.
    Swap { record: usize },
    /// After this many bytes of records, stop and send FIN both ways.
    Cut { after: usize },
    /// Rewrite the suite list in LocalHello.
    Offer(OfferEdit),
    /// Append [`TRAILING`] to the last handshake frame of the flight, in one write.
    Trail,
    /// Hold the last handshake frame of the flight and the first record, and send
    /// them in one write with the second record: not an attack, but the arrival
    /// the roles must handle when a peer's bytes come in together.
    Coalesce,
}

/// What [`Fault::Trail`] appends.
const TRAILING: &[u8] = b"extra";

/// How the cipher offer is rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OfferEdit {
    /// Reverse the order of the offered suites.
    Reverse,
    /// Remove the first offered suite.
    RemoveFirst,
}

/// A listener that opens one upstream connection per accepted one and pumps both
/// ways, applying its fault to every connection.
struct Proxy {
    addr: SocketAddr,
}

impl Proxy {
    async fn start(upstream: SocketAddr, fault: Fault, direction: Direction) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((downstream, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (local_read, local_write) = downstream.into_split();
                let (remote_read, remote_write) = upstream.into_split();
                let cut = CancellationToken::new();
                let (to_remote, to_local) = match direction {
                    Direction::LocalToRemote => (fault, Fault::None),
                    Direction::RemoteToLocal => (Fault::None, fault),
                };
                let side = Direction::LocalToRemote;
                tokio::spawn(pump(local_read, remote_write, side, to_remote, cut.clone()));
                let side = Direction::RemoteToLocal;
                tokio::spawn(pump(remote_read, local_write, side, to_local, cut));
            }
        });
        Self { addr }
    }
}

/// Forwards one direction; on its end sends FIN onward, and after a cut reads the
/// sender dry so that closing the socket later is a FIN and not a reset.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    side: Direction,
    fault: Fault,
    cut: CancellationToken,
) {
    tokio::select! {
        _ = forward(&mut from, &mut to, side, fault, &cut) => {}
        () = cut.cancelled() => {}
    }
    let _ = to.shutdown().await;
    if cut.is_cancelled() {
        let mut sink = vec![0u8; 64 * 1024];
        let drain = async { while matches!(from.read(&mut sink).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(DRAIN_LIMIT, drain).await;
    }
}

/// Copies the handshake frames of one side, then its records, applying `fault`.
async fn forward<R, W>(
    from: &mut R,
    to: &mut W,
    side: Direction,
    fault: Fault,
    cut: &CancellationToken,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut preface = [0u8; frame::PREFACE_LEN];
    from.read_exact(&mut preface).await?;
    to.write_all(&preface).await?;
    let mut held: Option<Vec<u8>> = None;
    loop {
        let mut frame = read_frame(from).await?;
        if let (Fault::Offer(edit), frame::LOCAL_HELLO) = (fault, frame[0]) {
            frame = rewrite_offer(&frame, edit);
        }
        let last = last_frame_of_flight(side, frame[0]);
        match fault {
            Fault::Trail if last => frame.extend_from_slice(TRAILING),
            Fault::Coalesce if last => {
                held = Some(frame);
                break;
            }
            _ => {}
        }
        to.write_all(&frame).await?;
        if frame[0] == frame::ALERT {
            tokio::io::copy(from, to).await?;
            return Ok(());
        }
        if last {
            break;
        }
    }

    let mut index = 0;
    let mut forwarded = 0;
    while let Some(mut record) = read_record(from).await? {
        let len = record.len();
        match fault {
            Fault::Coalesce if index < 2 => {
                let pending = held.get_or_insert_with(Vec::new);
                pending.extend_from_slice(&record);
                if index == 1 {
                    to.write_all(&held.take().expect("the frame is held"))
                        .await?;
                }
            }
            Fault::Flip { record: at } if at == index => {
                let middle = HEADER_LEN + (record.len() - HEADER_LEN) / 2;
                record[middle] ^= 0x10;
                to.write_all(&record).await?;
            }
            Fault::Replay { record: at } if at == index => {
                to.write_all(&record).await?;
                to.write_all(&record).await?;
            }
            Fault::Drop { record: at } if at == index => {}
            Fault::Swap { record: at } if at == index => held = Some(record),
            Fault::Swap { record: at } if at + 1 == index => {
                to.write_all(&record).await?;
                to.write_all(&held.take().expect("the earlier record is held"))
                    .await?;
            }
            Fault::Cut { after } if forwarded + record.len() >= after => {
                to.write_all(&record[..after - forwarded]).await?;
                to.flush().await?;
                cut.cancel();
                return Ok(());
            }
            _ => to.write_all(&record).await?,
        }
        forwarded += len;
        index += 1;
    }
    if let Some(record) = held {
        to.write_all(&record).await?;
    }
    Ok(())
}

/// Whether `kind` is the last handshake frame `side` sends: LocalAuth (or a resumed
/// handshake's LocalFinished) toward the remote, RemoteAuth (or RemoteFinished)
/// toward the local.
fn last_frame_of_flight(side: Direction, kind: u8) -> bool {
    match side {
        Direction::LocalToRemote => kind == frame::LOCAL_AUTH || kind == frame::LOCAL_FINISHED,
        Direction::RemoteToLocal => kind == frame::REMOTE_AUTH || kind == frame::REMOTE_FINISHED,
    }
}

/// Reads one handshake frame, header included.
async fn read_frame<R: AsyncRead + Unpin>(from: &mut R) -> std::io::Result<Vec<u8>> {
    let mut frame = vec![0u8; 3];
    from.read_exact(&mut frame).await?;
    let len = u16::from_be_bytes([frame[1], frame[2]]) as usize;
    frame.resize(3 + len, 0);
    from.read_exact(&mut frame[3..]).await?;
    Ok(frame)
}

/// Reads one record, header included; `None` at a clean end between records. A
/// stream ending inside a record ends the copy (the receiver sees the truncation).
async fn read_record<R: AsyncRead + Unpin>(from: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut record = vec![0u8; HEADER_LEN];
    match from.read_exact(&mut record).await {
        Ok(_) => {}
        Err(err) if err.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let len = u32::from_be_bytes(record[..4].try_into().unwrap()) as usize;
    if len > PROXY_RECORD_LIMIT {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            "record too long",
        ));
    }
    record.resize(HEADER_LEN + len, 0);
    from.read_exact(&mut record[HEADER_LEN..]).await?;
    Ok(Some(record))
}

/// Rewrites the suite list of a LocalHello frame: X25519 share (32), flags (1),
/// suite count (1), suite ids, then the rest.
fn rewrite_offer(frame: &[u8], edit: OfferEdit) -> Vec<u8> {
    let body = &frame[3..];
    let count = body[33] as usize;
    let mut suites = body[34..34 + count].to_vec();
    assert!(suites.len() >= 2, "the default offer lists both suites");
    match edit {
        OfferEdit::Reverse => suites.reverse(),
        OfferEdit::RemoveFirst => {
            suites.remove(0);
        }
    }
    let mut new_body = body[..33].to_vec();
    new_body.push(suites.len() as u8);
    new_body.extend_from_slice(&suites);
    new_body.extend_from_slice(&body[34 + count..]);
    let mut out = vec![frame[0]];
    out.extend_from_slice(&(new_body.len() as u16).to_be_bytes());
    out.extend_from_slice(&new_body);
    out
}

// ---------------------------------------------------------------------------------
// Both ends: the recording target, the client, and the log capture.

/// What the recording target saw of its connections.
#[derive(Debug, Default, Clone)]
struct TargetRecord {
    accepted: usize,
    received: Vec<u8>,
    end: Option<End>,
}

/// How a reader's stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// End of stream.
    Clean,
    /// Connection reset.
    Reset,
    /// Any other error.
    Failed(ErrorKind),
}

/// A target that keeps every byte it receives and sends [`target_data`] in paced
/// chunks, then half-closes.
struct RecordingTarget {
    addr: SocketAddr,
    record: Arc<Mutex<TargetRecord>>,
}

impl RecordingTarget {
    async fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let record = Arc::new(Mutex::new(TargetRecord::default()));
        let shared = record.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.lock().unwrap().accepted += 1;
                tokio::spawn(serve_recording(stream, shared.clone()));
            }
        });
        Self { addr, record }
    }

    fn record(&self) -> TargetRecord {
        self.record.lock().unwrap().clone()
    }
}

async fn serve_recording(stream: TcpStream, record: Arc<Mutex<TargetRecord>>) {
    let (mut reader, writer) = stream.into_split();
    let reading = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => break End::Clean,
                Ok(n) => record.lock().unwrap().received.extend_from_slice(&buf[..n]),
                Err(err) => break end_of(&err),
            }
        }
    };
    let sending = async {
        let mut writer = send_chunks(writer, target_data()).await?;
        writer.shutdown().await
    };
    let (read_end, sent) = tokio::join!(reading, sending);
    let end = combine(read_end, sent);
    record.lock().unwrap().end = Some(end);
}

/// Sends `data` in paced chunks; returns the writer once every write succeeded.
async fn send_chunks(mut writer: OwnedWriteHalf, data: Vec<u8>) -> std::io::Result<OwnedWriteHalf> {
    for chunk in data.chunks(CHUNK_LEN) {
        writer.write_all(chunk).await?;
        tokio::time::sleep(CHUNK_PAUSE).await;
    }
    Ok(writer)
}

/// The client's sending half: paced chunks, then a half-close once the client has
/// read to the end (or failed). Holding the half-close until then keeps both
/// directions of the tunnel open until a fault in either one is detected, so how
/// the far end sees the failure does not depend on timing.
async fn send_paced(
    writer: OwnedWriteHalf,
    data: Vec<u8>,
    read_done: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let mut writer = send_chunks(writer, data).await?;
    let _ = read_done.await;
    writer.shutdown().await
}

/// One outcome for a connection from its reading and its writing half. A reset is
/// reported to whichever system call comes first, after which the other half may
/// see a plain end of stream, so a reset seen by either half counts.
fn combine(read_end: End, written: std::io::Result<()>) -> End {
    match (read_end, written) {
        (End::Reset, _) => End::Reset,
        (_, Err(err)) if err.kind() == ErrorKind::ConnectionReset => End::Reset,
        (End::Clean, Err(err)) => End::Failed(err.kind()),
        (end, _) => end,
    }
}

async fn read_to_end<R: AsyncRead + Unpin>(reader: &mut R, out: &mut Vec<u8>) -> End {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => return End::Clean,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(err) => return end_of(&err),
        }
    }
}

fn end_of(err: &std::io::Error) -> End {
    match err.kind() {
        ErrorKind::ConnectionReset => End::Reset,
        kind => End::Failed(kind),
    }
}

fn assert_prefix(got: &[u8], sent: &[u8], who: &str) {
    assert!(
        got.len() <= sent.len() && got == &sent[..got.len()],
        "the {who} received {} bytes that are not a prefix of what was sent",
        got.len()
    );
}

/// Bytes the client sends: a fixed pseudo-random stream.
fn client_data() -> Vec<u8> {
    pattern(0x0123_4567_89ab_cdef, CHUNK_LEN * CHUNKS)
}

/// Bytes the target sends: another fixed stream.
fn target_data() -> Vec<u8> {
    pattern(0xfedc_ba98_7654_3210, CHUNK_LEN * CHUNKS)
}

/// A xorshift byte stream; any change to a byte or its position shows up.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Bytes per chunk written by the client and by the target.
const CHUNK_LEN: usize = 4096;

/// Chunks each end sends; the faults aim at record 2, well inside the stream.
const CHUNKS: usize = 8;

/// Pause between chunks, so each chunk tends to travel as its own record.
const CHUNK_PAUSE: Duration = Duration::from_millis(10);

/// Where the cut falls: inside the third record or so, far from either end.
const CUT_AFTER: usize = 10_000;

/// Data records sealed in a direct exchange.
const DIRECT_RECORDS: usize = 6;

/// Longest record the proxy relays; larger than any valid record.
const PROXY_RECORD_LIMIT: usize = 1 << 20;

/// How long the proxy keeps reading a sender after a cut.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Upper bound on one end-to-end run.
const SCENARIO_LIMIT: Duration = Duration::from_secs(10);
