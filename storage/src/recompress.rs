//! Topic-level `compression.type` other than `producer`: batches a producer compressed
//! with another codec (or not at all) are stored recompressed with the topic's codec, as
//! Kafka's broker does. Only the record area changes: offsets, producer fields, flags and
//! timestamps of each batch stay as sent, and its length and CRC are recomputed.

use crate::batch::{push_with_record_area, BatchHeader, ValidatedBatch, ValidationLimits};
use crate::compression::{Compression, CompressionLevels};
use crate::error::{Result, StorageError};

/// `records` (the batches `validated` describes, back to back) with every data batch not in
/// `target` recompressed with it at `levels`, and the batches' validation carried over, or
/// `None` when every batch already is in `target` (nothing to copy). Control batches
/// (transaction markers) are left as they are. Only the record area's encoding changes, so
/// what validation found about the records still holds; the new size is checked against
/// `limits.max_batch_bytes` (MESSAGE_TOO_LARGE, as Kafka checks it after recompressing).
pub(crate) fn to_codec(
    records: &[u8],
    validated: &[ValidatedBatch],
    target: Compression,
    levels: &CompressionLevels,
    limits: &ValidationLimits,
) -> Result<Option<(Vec<u8>, Vec<ValidatedBatch>)>> {
    let needs = |v: &ValidatedBatch| -> Result<bool> {
        Ok(!v.header.is_control() && v.header.compression()? != target)
    };
    let mut any = false;
    for v in validated {
        any |= needs(v)?;
    }
    if !any {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(records.len());
    let mut revalidated = Vec::with_capacity(validated.len());
    let mut position = 0;
    for v in validated {
        let size = v.header.total_size();
        let batch = &records[position..position + size];
        position += size;
        if !needs(v)? {
            out.extend_from_slice(batch);
            revalidated.push(*v);
            continue;
        }
        let area = crate::batch::record_area(batch, &v.header, limits.max_decompressed_bytes)?;
        let body = target.compress_with(&area, levels);
        if body.is_empty() && !area.is_empty() {
            // Every codec's output has a frame header: empty means the encoder failed (it
            // could not allocate), and a batch without its records must never be stored.
            return Err(StorageError::CorruptMessage(format!(
                "recompressing a batch with {target:?} failed"
            )));
        }
        let start = out.len();
        push_with_record_area(&mut out, batch, target, &body);
        let size = out.len() - start;
        if size > limits.max_batch_bytes {
            return Err(StorageError::MessageTooLarge {
                size,
                limit: limits.max_batch_bytes,
            });
        }
        revalidated.push(ValidatedBatch {
            header: BatchHeader::parse(&out[start..])?,
            ..*v
        });
    }
    Ok(Some((out, revalidated)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{record_area, validate};
    use crate::builder::BatchBuilder;
    use crate::record::RecordIter;

    fn batch(codec: Compression, keys: &[&str], flags: i16) -> Vec<u8> {
        let mut b = BatchBuilder::new(0);
        b.compression(codec).producer(7, 2, 40).flags(flags);
        for (i, k) in keys.iter().enumerate() {
            let value = k.repeat(50);
            b.push(
                Some(k.as_bytes()),
                Some(value.as_bytes()),
                &[(b"h".as_slice(), Some(k.as_bytes()))],
                1_000 + i as i64,
            );
        }
        b.build()
    }

    fn validated(records: &[u8]) -> Vec<ValidatedBatch> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < records.len() {
            let header = BatchHeader::parse(&records[at..]).unwrap();
            let size = header.total_size();
            out.push(validate(&records[at..at + size], &ValidationLimits::default(), 0).unwrap());
            at += size;
        }
        out
    }

    /// `to_codec` at the default levels and limits, checking that the validation it carries
    /// over is what validating its output finds.
    fn recompressed(records: &[u8], target: Compression) -> Option<Vec<u8>> {
        let limits = ValidationLimits::default();
        let (out, carried) = to_codec(
            records,
            &validated(records),
            target,
            &CompressionLevels::default(),
            &limits,
        )
        .unwrap()?;
        assert_eq!(carried, validated(&out));
        Some(out)
    }

    fn keys_and_values(batch: &[u8]) -> Vec<(Vec<u8>, Vec<u8>, i64)> {
        let header = BatchHeader::parse(batch).unwrap();
        let area = record_area(batch, &header, usize::MAX >> 1).unwrap();
        RecordIter::new(&area, header.record_count as usize)
            .map(|r| {
                let r = r.unwrap();
                (
                    r.key.unwrap().to_vec(),
                    r.value.unwrap().to_vec(),
                    header.base_timestamp + r.timestamp_delta,
                )
            })
            .collect()
    }

    #[test]
    fn batches_in_another_codec_are_recompressed_keeping_everything_else() {
        let gzip = batch(Compression::Gzip, &["a", "b"], 0x10);
        let zstd = batch(Compression::Zstd, &["c"], 0);
        let plain = batch(Compression::None, &["d", "e", "f"], 0);
        let records = [gzip.clone(), zstd.clone(), plain.clone()].concat();
        let out = recompressed(&records, Compression::Zstd).unwrap();
        let again = validated(&out);
        assert_eq!(again.len(), 3);
        let mut at = 0;
        for (v, original) in again.iter().zip([&gzip, &zstd, &plain]) {
            let before = BatchHeader::parse(original).unwrap();
            assert_eq!(v.header.compression().unwrap(), Compression::Zstd);
            assert_eq!(v.header.attributes & !0x07, before.attributes & !0x07);
            assert_eq!(
                (
                    v.header.producer_id,
                    v.header.producer_epoch,
                    v.header.base_sequence
                ),
                (7, 2, 40)
            );
            assert_eq!(v.header.last_offset_delta, before.last_offset_delta);
            assert_eq!(v.header.max_timestamp, before.max_timestamp);
            let size = v.header.total_size();
            assert_eq!(
                keys_and_values(&out[at..at + size]),
                keys_and_values(original)
            );
            at += size;
        }
        // The zstd batch was not touched.
        let first = again[0].header.total_size();
        assert_eq!(&out[first..first + zstd.len()], &zstd[..]);
    }

    #[test]
    fn nothing_is_copied_when_every_batch_has_the_codec_and_markers_stay() {
        let records = batch(Compression::Lz4, &["a"], 0);
        assert!(recompressed(&records, Compression::Lz4).is_none());
        let marker = crate::transactions::TxnMarker {
            producer_id: 7,
            producer_epoch: 2,
            coordinator_epoch: 0,
            commit: true,
        }
        .to_batch(5);
        assert!(recompressed(&marker, Compression::Gzip).is_none());
    }

    #[test]
    fn uncompressed_target_decompresses() {
        let records = batch(Compression::Snappy, &["x", "y"], 0);
        let out = recompressed(&records, Compression::None).unwrap();
        let v = validated(&out);
        assert_eq!(v[0].header.compression().unwrap(), Compression::None);
        assert!(out.windows(50).any(|w| w == "x".repeat(50).as_bytes()));
        assert_eq!(keys_and_values(&out), keys_and_values(&records));
    }
}
