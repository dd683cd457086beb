//! A recording on disk: a [`Writer`] over a file that is synced to disk at
//! an interval (time is an input), so a power loss loses at most that
//! interval and a killed process at most the chunk in progress.

use std::fs::File;
use std::io::BufWriter;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::header::Header;
use crate::keys::Key;
use crate::stream::Writer;

/// Default sync interval.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// The interval of a recording that someone else syncs (a server that
/// syncs the whole filesystem of its recordings at once): the recorder
/// never syncs, not even at its end.
pub const EXTERNAL_SYNC: Duration = Duration::MAX;

/// A recording being written to a file.
pub struct FileRecorder {
    writer: Writer<BufWriter<File>>,
    interval: Duration,
    last_sync: Instant,
    /// Syncs done.
    pub syncs: u64,
}

impl FileRecorder {
    /// Starts a recording in `file` (created by the caller, so it decides
    /// where and with which permissions).
    pub fn new(
        file: File,
        header: &Header,
        data_key: &Key,
        interval: Duration,
        now: Instant,
    ) -> Result<FileRecorder, Error> {
        // Unbuffered enough that each sealed chunk reaches the OS at once:
        // the buffer is flushed after every write below. It holds the
        // header and one sealed chunk (length, WAV header, audio, tag), so
        // that a chunk is one write, and no more (the default 8 KiB is
        // twice what an 8 kHz stereo chunk needs, for every recording).
        let capacity = header.encode()?.len()
            + header.chunk_frames as usize * usize::from(header.channels) * 2
            + 4
            + 44
            + 16;
        let writer = Writer::new(BufWriter::with_capacity(capacity, file), header, data_key)?;
        Ok(FileRecorder {
            writer,
            interval,
            last_sync: now,
            syncs: 0,
        })
    }

    /// Appends samples; completed chunks go to the OS now, and the file is
    /// synced when the interval has passed.
    pub fn write(&mut self, now: Instant, interleaved: &[i16]) -> Result<(), Error> {
        self.writer.write_samples(interleaved)?;
        std::io::Write::flush(self.writer.get_mut())?;
        if now.saturating_duration_since(self.last_sync) >= self.interval {
            self.writer.get_mut().get_ref().sync_data()?;
            self.last_sync = now;
            self.syncs += 1;
        }
        Ok(())
    }

    /// Seals the last chunk and syncs (unless it is synced externally).
    pub fn finish(self) -> Result<(), Error> {
        let out = self.writer.finish()?;
        let file = out.into_inner().map_err(|e| Error::Io(e.to_string()))?;
        if self.interval != EXTERNAL_SYNC {
            file.sync_all()?;
        }
        Ok(())
    }
}

/// Crypto-shreds a recording: its wrapped data key is overwritten in place
/// with random bytes and synced to disk (from then on no key opens the
/// audio in these blocks: the file, its hard links, a snapshot that shares
/// them), then the file is deleted. A copy made before (a backup) keeps its
/// own wrapped key: backups of recordings must follow the same retention.
pub fn shred(path: &std::path::Path) -> Result<(), Error> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let (header, _) = crate::stream::read_header(&mut f)?;
    let old_len = header.encode()?.len();
    let mut shredded = header.clone();
    let mut rng = rand::rng();
    rand::Rng::fill(&mut rng, shredded.wrapped_key.as_mut_slice());
    let bytes = shredded.encode()?;
    if bytes.len() != old_len {
        return Err(Error::CorruptHeader("header changed size"));
    }
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::remove_file(path)?;
    Ok(())
}

/// Key rotation on disk: re-wraps a recording's data key from `old_kek`
/// to `new_kek` (see [`crate::keys::rewrap`]). The new header and the
/// untouched audio bytes go to a temporary file beside it, which is synced
/// and renamed over the original, so a crash leaves the old or the new
/// file, never a mix.
pub fn rewrap_file(
    path: &std::path::Path,
    old_kek: &Key,
    new_kek: &Key,
    new_key_id: &str,
) -> Result<(), Error> {
    use std::io::{Read, Write};
    let mut f = File::open(path)?;
    let (header, carry) = crate::stream::read_header(&mut f)?;
    let new = crate::keys::rewrap(&header, old_kek, new_kek, new_key_id, &mut rand::rng())?;
    let tmp = path.with_extension("rewrap.tmp");
    let result = (|| {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        out.write_all(&new.encode()?)?;
        out.write_all(&carry)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            out.write_all(buf.get(..n).unwrap_or_default())?;
        }
        out.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::header::KeyMode;
    use crate::keys::{unwrap_kek, wrap_kek};

    /// A mono 8 kHz header of tenant `t`, call `c`, wrapped with `kek`.
    fn mono_header(
        kek: &Key,
        data_key: &Key,
        key_id: &str,
        prefix: u8,
        rng: &mut StdRng,
    ) -> Header {
        Header {
            key_mode: KeyMode::Kek,
            tenant: "t".into(),
            key_id: key_id.into(),
            wrapped_key: wrap_kek(kek, data_key, "t", key_id, "c", rng).expect("wrap"),
            sample_rate: 8000,
            channels: 1,
            chunk_frames: 800,
            call_id: "c".into(),
            nonce_prefix: [prefix; 7],
        }
    }

    /// A mono recorder in `dir/r.rec` syncing every `interval`, under
    /// the KEK `[3; 32]`: the recorder, its path, the KEK, its start.
    fn recorder(
        dir: &std::path::Path,
        seed: u64,
        interval: Duration,
    ) -> (FileRecorder, std::path::PathBuf, Key, Instant) {
        let path = dir.join("r.rec");
        let kek = Key([3; 32]);
        let mut rng = StdRng::seed_from_u64(seed);
        let data_key = Key::random(&mut rng);
        let header = mono_header(&kek, &data_key, "k", 0, &mut rng);
        let t0 = Instant::now();
        let r = FileRecorder::new(
            File::create(&path).expect("create"),
            &header,
            &data_key,
            interval,
            t0,
        )
        .expect("recorder");
        (r, path, kek, t0)
    }

    #[test]
    fn chunks_reach_the_file_as_they_complete_and_syncs_follow_the_interval() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut r, path, kek, t0) = recorder(dir.path(), 2, SYNC_INTERVAL);
        // 3 seconds in 20 ms frames.
        for i in 0..150u32 {
            r.write(t0 + Duration::from_millis(20 * u64::from(i)), &[100; 160])
                .expect("write");
        }
        assert_eq!(r.syncs, 2, "at 1 s and 2 s");
        // Without finishing (as if killed now), the file already verifies
        // up to the last whole chunk.
        let bytes = std::fs::read(&path).expect("read");
        match crate::stream::verify(&bytes[..], |h| unwrap_kek(&kek, h)) {
            Err(Error::Truncated { seconds, .. }) => {
                assert!(seconds >= 2.89, "lost at most one chunk: {seconds}")
            }
            other => panic!("{other:?}"),
        }
        r.finish().expect("finish");
        let bytes = std::fs::read(&path).expect("read");
        let s = crate::stream::verify(&bytes[..], |h| unwrap_kek(&kek, h)).expect("intact");
        assert!((s.seconds - 3.0).abs() < 1e-9);
    }

    #[test]
    fn an_externally_synced_recording_never_syncs_but_still_writes_each_chunk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut r, path, kek, t0) = recorder(dir.path(), 3, EXTERNAL_SYNC);
        for i in 0..500u32 {
            r.write(t0 + Duration::from_millis(20 * u64::from(i)), &[100; 160])
                .expect("write");
        }
        assert_eq!(r.syncs, 0, "ten seconds, no sync of its own");
        let bytes = std::fs::read(&path).expect("read");
        match crate::stream::verify(&bytes[..], |h| unwrap_kek(&kek, h)) {
            Err(Error::Truncated { seconds, .. }) => {
                assert!(seconds >= 9.89, "lost at most one chunk: {seconds}")
            }
            other => panic!("{other:?}"),
        }
        r.finish().expect("finish");
    }

    #[test]
    fn a_shredded_recording_cannot_be_opened_through_a_hard_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.rec");
        let kek = Key([5; 32]);
        let mut rng = StdRng::seed_from_u64(9);
        let data_key = Key::random(&mut rng);
        let header = mono_header(&kek, &data_key, "k", 1, &mut rng);
        let t0 = Instant::now();
        let mut r = FileRecorder::new(
            File::create(&path).expect("create"),
            &header,
            &data_key,
            SYNC_INTERVAL,
            t0,
        )
        .expect("recorder");
        r.write(t0, &[7; 1600]).expect("write");
        r.finish().expect("finish");
        // A "backup" taken by hard link sees the same bytes as the file.
        let backup = dir.path().join("backup.rec");
        std::fs::hard_link(&path, &backup).expect("link");
        shred(&path).expect("shred");
        assert!(!path.exists(), "the file is gone");
        let mut f = File::open(&backup).expect("backup");
        let (h, _) = crate::stream::read_header(&mut f).expect("header still parses");
        assert!(
            matches!(unwrap_kek(&kek, &h), Err(Error::WrongKey { .. })),
            "the key no longer opens it"
        );
    }

    #[test]
    fn rewrapping_a_file_changes_its_key_and_keeps_its_audio() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.rec");
        let (old, new) = (Key([1; 32]), Key([2; 32]));
        let mut rng = StdRng::seed_from_u64(4);
        let data_key = Key::random(&mut rng);
        let header = mono_header(&old, &data_key, "t-old", 2, &mut rng);
        let t0 = Instant::now();
        let mut r = FileRecorder::new(
            File::create(&path).expect("create"),
            &header,
            &data_key,
            SYNC_INTERVAL,
            t0,
        )
        .expect("recorder");
        r.write(t0, &[9; 4000]).expect("write");
        r.finish().expect("finish");
        let before = std::fs::read(&path).expect("read");
        rewrap_file(&path, &old, &new, "t-newer").expect("rewrap");
        let after = std::fs::read(&path).expect("read");
        let (h, _) = crate::stream::read_header(&mut after.as_slice()).expect("header");
        assert_eq!(h.key_id, "t-newer");
        assert!(
            unwrap_kek(&old, &h).is_err(),
            "the old key no longer opens it"
        );
        let s = crate::stream::verify(after.as_slice(), |h| unwrap_kek(&new, h)).expect("verifies");
        assert!((s.seconds - 0.5).abs() < 0.01, "{}", s.seconds);
        let old_len = header.encode().expect("enc").len();
        assert_eq!(
            before[old_len..],
            after[h.encode().expect("enc").len()..],
            "audio bytes untouched"
        );
        // A wrong old key leaves the file as it was.
        assert!(rewrap_file(&path, &old, &new, "x").is_err());
        assert_eq!(std::fs::read(&path).expect("read"), after);
    }
}
