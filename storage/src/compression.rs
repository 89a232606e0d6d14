//! The five compression codecs of the Kafka record format, for validating and rewriting
//! compressed batches. Decompression is bounded so a small "zip bomb" cannot exhaust memory.

use std::io::{Read, Write};

use crate::error::{Result, StorageError};

/// Compression codec of a batch (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Records stored as they are.
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// Snappy, raw or in the xerial framing the Java client writes.
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

/// The levels the broker compresses at, per codec: a topic's `compression.gzip.level`,
/// `compression.lz4.level` and `compression.zstd.level` (KIP-390), with Kafka's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionLevels {
    /// 1-9, or -1 for zlib's default (6).
    pub gzip: i32,
    /// 1-17; recorded only: the LZ4 encoder used here has one level (LZ4's fast mode).
    pub lz4: i32,
    /// -131072 to 22.
    pub zstd: i32,
}

impl Default for CompressionLevels {
    fn default() -> Self {
        CompressionLevels {
            gzip: -1,
            lz4: 9,
            zstd: 3,
        }
    }
}

thread_local! {
    /// A zstd context per thread, with its level: creating one per batch costs more than
    /// compressing a 16 KiB batch.
    static ZSTD_COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

fn compress_zstd(data: &[u8], level: i32) -> Vec<u8> {
    ZSTD_COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = zstd::bulk::Compressor::new(level).ok().map(|c| (level, c));
        }
        match slot.as_mut() {
            Some((_, compressor)) => compressor.compress(data).unwrap_or_default(),
            None => zstd::bulk::compress(data, level).unwrap_or_default(),
        }
    })
}

/// The framing header the Java client's Snappy stream starts with.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";

impl Compression {
    /// Maps the 3-bit codec id of batch attributes to a codec.
    pub fn from_id(id: u8) -> Result<Self> {
        Ok(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(StorageError::UnsupportedCompression(other)),
        })
    }

    /// The 3-bit codec id written in batch attributes.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Decompresses `data`, failing with CORRUPT_MESSAGE when it is not valid for this codec
    /// or would decompress to more than `limit` bytes.
    pub fn decompress(self, data: &[u8], limit: usize) -> Result<Vec<u8>> {
        let corrupt =
            |e: &dyn std::fmt::Display| StorageError::CorruptMessage(format!("{self:?}: {e}"));
        match self {
            Compression::None => Ok(data.to_vec()),
            Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(data), limit)
                .map_err(|e| corrupt(&e)),
            Compression::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(data), limit)
                .map_err(|e| corrupt(&e)),
            Compression::Zstd => {
                let decoder = zstd::stream::read::Decoder::new(data).map_err(|e| corrupt(&e))?;
                read_bounded(decoder, limit).map_err(|e| corrupt(&e))
            }
            Compression::Snappy => decompress_snappy(data, limit).map_err(|e| corrupt(&e)),
        }
    }

    /// Compresses `data` with this codec at the default levels (Snappy in the xerial
    /// framing, as Java writes it).
    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        self.compress_with(data, &CompressionLevels::default())
    }

    /// Compresses `data` with this codec at `levels` (a topic's `compression.*.level`).
    pub fn compress_with(self, data: &[u8], levels: &CompressionLevels) -> Vec<u8> {
        match self {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let level = match u32::try_from(levels.gzip) {
                    Ok(level) => flate2::Compression::new(level),
                    Err(_) => flate2::Compression::default(),
                };
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), level);
                // Writing into a Vec cannot fail.
                let _ = enc.write_all(data);
                enc.finish().unwrap_or_default()
            }
            Compression::Lz4 => {
                let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
                let _ = enc.write_all(data);
                enc.finish().unwrap_or_default()
            }
            Compression::Zstd => compress_zstd(data, levels.zstd),
            Compression::Snappy => {
                let mut out = Vec::with_capacity(data.len() / 2 + 32);
                out.extend_from_slice(XERIAL_MAGIC);
                out.extend_from_slice(&1u32.to_be_bytes());
                out.extend_from_slice(&1u32.to_be_bytes());
                for chunk in data.chunks(32 * 1024) {
                    let block = snap::raw::Encoder::new()
                        .compress_vec(chunk)
                        .unwrap_or_default();
                    out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                    out.extend_from_slice(&block);
                }
                out
            }
        }
    }
}

fn read_bounded(reader: impl Read, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let read = reader.take(limit as u64 + 1).read_to_end(&mut out)?;
    if read > limit {
        return Err(std::io::Error::other(format!(
            "decompresses to more than {limit} bytes"
        )));
    }
    Ok(out)
}

fn decompress_snappy(data: &[u8], limit: usize) -> std::result::Result<Vec<u8>, String> {
    let raw = |block: &[u8], out: &mut Vec<u8>| -> std::result::Result<(), String> {
        let len = snap::raw::decompress_len(block).map_err(|e| e.to_string())?;
        if out.len() + len > limit {
            return Err(format!("decompresses to more than {limit} bytes"));
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|e| e.to_string())?;
        Ok(())
    };
    let mut out = Vec::new();
    if !data.starts_with(XERIAL_MAGIC) {
        raw(data, &mut out)?;
        return Ok(out);
    }
    let mut pos = 16; // magic + version + compatible version
    while pos < data.len() {
        let len_bytes: [u8; 4] = data
            .get(pos..pos + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or("truncated xerial chunk length")?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        pos += 4;
        let block = data
            .get(pos..pos.saturating_add(len))
            .ok_or("xerial chunk past the end")?;
        raw(block, &mut out)?;
        pos += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let packed = codec.compress(&data);
            assert_eq!(
                codec.decompress(&packed, data.len()).unwrap(),
                data,
                "{codec:?}"
            );
            if codec != Compression::None {
                assert!(
                    codec.decompress(&packed, data.len() - 1).is_err(),
                    "{codec:?} limit"
                );
            }
        }
    }

    #[test]
    fn raw_snappy_is_accepted() {
        let block = snap::raw::Encoder::new()
            .compress_vec(b"hello hello")
            .unwrap();
        assert_eq!(
            Compression::Snappy.decompress(&block, 100).unwrap(),
            b"hello hello"
        );
    }

    #[test]
    fn garbage_is_corrupt_message() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let err = codec
                .decompress(b"definitely not compressed", 1000)
                .unwrap_err();
            assert_eq!(err.kafka_error_code(), 2, "{codec:?}");
        }
        assert_eq!(Compression::from_id(5).unwrap_err().kafka_error_code(), 76);
    }
}
