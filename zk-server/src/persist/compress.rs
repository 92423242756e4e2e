//! Compressed snapshots, as Apache writes and reads them
//! (`zookeeper.snapshot.compression.method`, Apache's `SnapStream`).
//!
//! A compressed snapshot is the plain snapshot stream (header, sessions,
//! tree, Adler32 of the uncompressed bytes, seal) run through the
//! compressor; the file name says which: `snapshot.<zxid>.gz` is gzip
//! (Java's `GZIPOutputStream`), `snapshot.<zxid>.snappy` is snappy-java's
//! `SnappyOutputStream` format: a 16-byte header (`\x82SNAPPY\0`, version
//! 1, compatible version 1, big-endian ints), then blocks of at most 32 KiB
//! of input, each a big-endian length and a raw snappy block.

use std::io::{self, Read, Write};

/// How snapshots are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Plain (Apache's default, `""`).
    #[default]
    None,
    /// gzip (`gz`), file suffix `.gz`.
    Gzip,
    /// snappy-java's stream format (`snappy`), file suffix `.snappy`.
    Snappy,
}

/// The snappy-java stream magic.
const SNAPPY_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic, version 1, compatible version 1.
const SNAPPY_HEADER: [u8; 16] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1];
/// snappy-java's default block size.
const SNAPPY_BLOCK: usize = 32 * 1024;
/// The gzip magic.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

impl Compression {
    /// Parses a `snapshot.compression.method` value as Apache names them:
    /// `""` (none), `gz` or `snappy`, in any case.
    ///
    /// # Errors
    /// Any other value (Apache falls back to no compression silently; a
    /// value that is not one of these is a mistake worth knowing about).
    pub fn parse(value: &str) -> Result<Compression, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" => Ok(Compression::None),
            "gz" => Ok(Compression::Gzip),
            "snappy" => Ok(Compression::Snappy),
            other => Err(format!("snapshot.compression.method must be gz, snappy or empty, not {other:?}")),
        }
    }

    /// The file name suffix (`""`, `.gz`, `.snappy`).
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Snappy => ".snappy",
        }
    }

    /// What a snapshot file name says its format is (the part after its
    /// last dot, as Apache's `SnapStream.getStreamMode`).
    pub fn of_file(name: &str) -> Compression {
        match name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()) {
            Some(ext) if ext == "gz" => Compression::Gzip,
            Some(ext) if ext == "snappy" => Compression::Snappy,
            _ => Compression::None,
        }
    }

    /// Whether a file's first bytes are this format's magic (Apache's
    /// `isValidGZipStream` / `isValidSnappyStream`); plain files are
    /// checked by their seal elsewhere.
    pub(crate) fn has_magic(self, head: &[u8]) -> bool {
        match self {
            Compression::None => true,
            Compression::Gzip => head.starts_with(&GZIP_MAGIC),
            Compression::Snappy => head.starts_with(&SNAPPY_MAGIC),
        }
    }

    /// Decompresses a whole file.
    ///
    /// # Errors
    /// A stream that does not decode.
    pub(crate) fn decode(self, bytes: Vec<u8>) -> io::Result<Vec<u8>> {
        match self {
            Compression::None => Ok(bytes),
            Compression::Gzip => {
                let mut out = Vec::with_capacity(bytes.len() * 4);
                flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_end(&mut out)?;
                Ok(out)
            }
            Compression::Snappy => snappy_decode(&bytes),
        }
    }
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Decodes snappy-java's stream format (header, then length-prefixed raw
/// blocks; a header met again starts a concatenated stream). A file
/// without the header is one raw snappy block, as snappy-java reads it.
fn snappy_decode(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut dec = snap::raw::Decoder::new();
    if !bytes.starts_with(&SNAPPY_MAGIC) {
        return dec.decompress_vec(bytes).map_err(|e| bad(format!("snappy: {e}")));
    }
    let mut out = Vec::with_capacity(bytes.len() * 3);
    let mut pos = 0usize;
    while pos < bytes.len() {
        if bytes[pos..].starts_with(&SNAPPY_MAGIC) {
            if bytes.len() - pos < SNAPPY_HEADER.len() {
                return Err(bad("snappy: a stream header cut short"));
            }
            pos += SNAPPY_HEADER.len();
            continue;
        }
        let Some(len) = bytes.get(pos..pos + 4) else {
            return Err(bad("snappy: a block length cut short"));
        };
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        pos += 4;
        let Some(block) = bytes.get(pos..pos + len) else {
            return Err(bad(format!("snappy: a block of {len} bytes cut short")));
        };
        pos += len;
        let n = snap::raw::decompress_len(block).map_err(|e| bad(format!("snappy: {e}")))?;
        let at = out.len();
        out.resize(at + n, 0);
        dec.decompress(block, &mut out[at..]).map_err(|e| bad(format!("snappy: {e}")))?;
    }
    Ok(out)
}

/// A writer that compresses (or not) into `W`.
pub(crate) enum Encoder<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Snappy(Box<SnappyWriter<W>>),
}

impl<W: Write> Encoder<W> {
    pub(crate) fn new(c: Compression, inner: W) -> io::Result<Encoder<W>> {
        Ok(match c {
            Compression::None => Encoder::Plain(inner),
            Compression::Gzip => {
                Encoder::Gzip(flate2::write::GzEncoder::new(inner, flate2::Compression::default()))
            }
            Compression::Snappy => {
                let mut inner = inner;
                inner.write_all(&SNAPPY_HEADER)?;
                Encoder::Snappy(Box::new(SnappyWriter {
                    inner,
                    buf: Vec::with_capacity(SNAPPY_BLOCK),
                    out: Vec::new(),
                    enc: snap::raw::Encoder::new(),
                }))
            }
        })
    }

    /// Ends the stream; the inner writer.
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(g) => g.finish(),
            Encoder::Snappy(mut s) => {
                s.block()?;
                Ok(s.inner)
            }
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(g) => g.write(buf),
            Encoder::Snappy(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(g) => g.flush(),
            Encoder::Snappy(s) => s.inner.flush(),
        }
    }
}

/// snappy-java's `SnappyOutputStream` format.
pub(crate) struct SnappyWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
    out: Vec<u8>,
    enc: snap::raw::Encoder,
}

impl<W: Write> SnappyWriter<W> {
    /// Writes the buffered input as one block.
    fn block(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.out.resize(snap::raw::max_compress_len(self.buf.len()), 0);
        let n = self.enc.compress(&self.buf, &mut self.out).map_err(|e| bad(format!("snappy: {e}")))?;
        self.inner.write_all(&(n as u32).to_be_bytes())?;
        self.inner.write_all(&self.out[..n])?;
        self.buf.clear();
        Ok(())
    }
}

impl<W: Write> Write for SnappyWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(SNAPPY_BLOCK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == SNAPPY_BLOCK {
            self.block()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_round_trip_and_bad_streams_are_errors() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_be_bytes()).collect();
        for c in [Compression::None, Compression::Gzip, Compression::Snappy] {
            let mut e = Encoder::new(c, Vec::new()).unwrap();
            for piece in data.chunks(7_777) {
                e.write_all(piece).unwrap();
            }
            let file = e.finish().unwrap();
            assert!(c.has_magic(&file), "{c:?}");
            if c != Compression::None {
                assert!(file.len() < data.len() / 2, "{c:?} compresses: {}", file.len());
            }
            assert_eq!(c.decode(file.clone()).unwrap(), data, "{c:?}");
            if c == Compression::Snappy {
                // Concatenated streams decode as one.
                let mut two = file.clone();
                two.extend_from_slice(&file);
                assert_eq!(c.decode(two).unwrap().len(), data.len() * 2);
                assert_eq!(&file[..16], &SNAPPY_HEADER);
            }
            if c != Compression::None {
                for cut in [3, file.len() / 2, file.len() - 1] {
                    assert!(c.decode(file[..cut].to_vec()).is_err(), "{c:?} cut at {cut}");
                }
            }
        }
        assert_eq!(Compression::parse("GZ"), Ok(Compression::Gzip));
        assert_eq!(Compression::parse(""), Ok(Compression::None));
        assert!(Compression::parse("gzip").is_err());
        assert_eq!(Compression::of_file("snapshot.1f.snappy"), Compression::Snappy);
        assert_eq!(Compression::of_file("snapshot.1f.gz"), Compression::Gzip);
        assert_eq!(Compression::of_file("snapshot.1f"), Compression::None);
    }
}
