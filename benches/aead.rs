//! Record-layer throughput: sealing and opening one data record with
//! [`Sealer::seal_in_place`] and [`Opener::open_in_place`], for every cipher suite and
//! for small, medium and full-size payloads.
//!
//! Throughput counts payload bytes, so the header, type byte and tag are overhead the
//! figures already pay for. Key agreement is not measured here (see the `handshake`
//! bench), and neither is socket I/O.
//!
//! Sealing runs on one buffer over and over; the sealer's counter moves on with every
//! record, and the rare key update a real sender makes is included when it falls due.
//! Opening must use a receiver in step with the sender, so records are sealed once up
//! front and opened in order by a fresh [`Opener`] per batch; building the opener and
//! restoring the sealed bytes happen outside the timed region, so each timed
//! iteration is exactly one `open_in_place` call.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tunnel::crypto::CipherSuite;
use tunnel::crypto::aead::{KEY_LEN, TAG_LEN};
use tunnel::record::{HEADER_LEN, MAX_PAYLOAD_LEN, Opener, RecordType, Sealer};
use zeroize::Zeroizing;

/// Payload sizes measured, in bytes: a small write, typical socket reads, and the
/// largest record the protocol allows.
const PAYLOAD_LENS: [usize; 4] = [1024, 16 * 1024, 64 * 1024, MAX_PAYLOAD_LEN];

/// Sealed bytes held for one batch of the open bench, in bytes. Small enough to stay
/// in cache like the single buffer the seal bench reuses, large enough that the
/// per-batch timer reads are negligible next to the work they bracket.
const OPEN_BATCH_BYTES: usize = 1024 * 1024;

/// A fixed traffic secret; the figures do not depend on the key's value.
const SECRET: [u8; KEY_LEN] = [0x5a; KEY_LEN];

fn seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("seal");
    for suite in CipherSuite::ALL {
        for payload_len in PAYLOAD_LENS {
            group.throughput(Throughput::Bytes(payload_len as u64));
            let id = BenchmarkId::new(suite.name(), size_label(payload_len));
            let mut sealer = Sealer::new(suite, Zeroizing::new(SECRET));
            let mut buf = record_buffer(payload_len);
            group.bench_function(id, |b| {
                b.iter(|| {
                    if sealer.key_update_due() {
                        black_box(sealer.seal_key_update());
                    }
                    let len = sealer
                        .seal_in_place(RecordType::Data, black_box(&mut buf), payload_len)
                        .expect("the buffer is sized for this payload");
                    black_box(len)
                });
            });
        }
    }
    group.finish();
}

fn open(c: &mut Criterion) {
    let mut group = c.benchmark_group("open");
    for suite in CipherSuite::ALL {
        for payload_len in PAYLOAD_LENS {
            group.throughput(Throughput::Bytes(payload_len as u64));
            let id = BenchmarkId::new(suite.name(), size_label(payload_len));
            let sealed = seal_batch(suite, payload_len);
            let mut work = sealed.clone();
            group.bench_function(id, |b| {
                b.iter_custom(|iters| open_records(suite, &sealed, &mut work, iters));
            });
        }
    }
    group.finish();
}

/// Opens `iters` records in order and returns the time spent inside `open_in_place`
/// alone. Each batch starts a fresh opener at counter zero, as the batch was sealed.
fn open_records(
    suite: CipherSuite,
    sealed: &[Vec<u8>],
    work: &mut [Vec<u8>],
    iters: u64,
) -> Duration {
    let mut remaining = iters;
    let mut elapsed = Duration::ZERO;
    while remaining > 0 {
        let count = remaining.min(sealed.len() as u64) as usize;
        for (copy, original) in work.iter_mut().zip(sealed).take(count) {
            copy.copy_from_slice(original);
        }
        let mut opener = Opener::new(suite, Zeroizing::new(SECRET));

        let start = Instant::now();
        for record in work.iter_mut().take(count) {
            let (header, body) = record.split_at_mut(HEADER_LEN);
            let header: &[u8; HEADER_LEN] = (&*header).try_into().expect("split at HEADER_LEN");
            let (kind, range) = opener
                .open_in_place(black_box(header), black_box(body))
                .expect("records are opened in the order they were sealed");
            black_box((kind, range));
        }
        elapsed += start.elapsed();

        remaining -= count as u64;
    }
    elapsed
}

/// Seals one batch of data records with a fresh sealer, and checks once, outside any
/// measurement, that a fresh opener gets every payload back.
fn seal_batch(suite: CipherSuite, payload_len: usize) -> Vec<Vec<u8>> {
    let count = (OPEN_BATCH_BYTES / payload_len).max(1);
    let mut sealer = Sealer::new(suite, Zeroizing::new(SECRET));
    let batch: Vec<Vec<u8>> = (0..count)
        .map(|_| {
            let mut buf = record_buffer(payload_len);
            let len = sealer
                .seal_in_place(RecordType::Data, &mut buf, payload_len)
                .expect("the buffer is sized for this payload");
            assert_eq!(len, buf.len(), "a sealed record fills its buffer");
            buf
        })
        .collect();

    let mut opener = Opener::new(suite, Zeroizing::new(SECRET));
    for record in &batch {
        let mut copy = record.clone();
        let (header, body) = copy.split_at_mut(HEADER_LEN);
        let header: &[u8; HEADER_LEN] = (&*header).try_into().expect("split at HEADER_LEN");
        let (kind, range) = opener
            .open_in_place(header, body)
            .expect("a fresh opener is in step");
        assert_eq!(kind, RecordType::Data);
        assert_eq!(
            &body[range],
            &payload(payload_len)[..],
            "{suite}: payload round-trips"
        );
    }
    batch
}

/// A buffer laid out for [`Sealer::seal_in_place`], payload already in place.
fn record_buffer(payload_len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; HEADER_LEN + 1 + payload_len + TAG_LEN];
    buf[HEADER_LEN + 1..][..payload_len].copy_from_slice(&payload(payload_len));
    buf
}

/// A payload that is not all one byte value.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn size_label(payload_len: usize) -> String {
    format!("{}KiB", payload_len / 1024)
}

criterion_group!(benches, seal, open);
criterion_main!(benches);
