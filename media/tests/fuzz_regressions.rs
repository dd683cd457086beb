//! Replays the fuzzers' seeds (`fuzz/seeds/<target>/`) and every input they
//! ever found to crash (`media/tests/data/fuzz/`, named after what they
//! broke) through the same code as the cargo-fuzz targets
//! (`media::fuzzing`), so the stable toolchain in CI covers them. A missing
//! folder fails the test: a replay that skips its corpus proves nothing.

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus folder {} is missing: {e}", dir.display()));
    let files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    assert!(
        !files.is_empty(),
        "corpus folder {} is empty",
        dir.display()
    );
    files
}

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut inputs = files(&root.join("../fuzz/seeds").join(target));
    // Past crashes go through every target: each is hostile input for all.
    inputs.extend(files(&root.join("tests/data/fuzz")));
    for path in &inputs {
        let data = std::fs::read(path).expect("read");
        run(&data);
        for cut in (0..data.len()).step_by(5) {
            run(&data[..cut]);
        }
    }
    inputs.len()
}

#[test]
fn rtp_packet_seeds_and_past_crashes_do_not_panic() {
    assert!(replay("rtp_packet", media::fuzzing::rtp_packet) >= 4);
}

#[test]
fn rtcp_compound_seeds_and_past_crashes_do_not_panic() {
    assert!(replay("rtcp_compound", media::fuzzing::rtcp_compound) >= 3);
}

#[test]
fn rfc4733_seeds_and_past_crashes_do_not_panic() {
    assert!(replay("rfc4733_events", media::fuzzing::rfc4733_events) >= 1);
}

#[test]
fn receive_path_seeds_and_past_crashes_do_not_panic() {
    assert!(replay("receive_path", media::fuzzing::receive_path) >= 1);
}

/// The crash files are real regressions, not decoration: each one is
/// something our readers must refuse or read without the `rtp` crate.
#[test]
fn the_past_crashes_are_what_their_names_say() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz");
    let read = |name: &str| std::fs::read(dir.join(name)).expect("crash file");
    let p = read("rtp-two-byte-element-past-block");
    let packet = media::rtp::packet::parse(&p).expect("block fits");
    let ext = packet.extension.expect("extension");
    assert_eq!(ext.profile, 0x1000);
    assert!(ext.elements().any(|e| e.is_err()));
    let r = read("rtcp-report-count-past-packet");
    assert_eq!(
        media::rtp::rtcp::parse(&r),
        Err(media::rtp::rtcp::RtcpError::ReportCountOverrun)
    );
}
