//! Topic-level `compression.type` other than `producer`: batches a producer compressed
//! with another codec (or not at all) are stored recompressed with the topic's codec, as
//! Kafka's broker does. Only the record area changes: offsets, producer fields, flags and
//! timestamps of each batch stay as sent, and its length and CRC are recomputed.

use crate::batch::{compute_crc, ValidatedBatch, BATCH_HEADER_LEN};
use crate::compression::{Compression, CompressionLevels};
use crate::error::Result;

/// Offset of the 4-byte batch length field.
const LENGTH_AT: usize = 8;
/// Offset of the 2-byte attributes field (its low 3 bits are the codec).
const ATTRIBUTES_AT: usize = 21;
/// Offset of the 4-byte CRC-32C field.
const CRC_AT: usize = 17;

/// `records` (the batches `validated` describes, back to back) with every data batch not in
/// `target` recompressed with it at `levels`, or `None` when every batch already is (nothing
/// to copy). Control batches (transaction markers) are left as they are. `limit` bounds the
/// decompressed size of a batch's records.
pub(crate) fn to_codec(
    records: &[u8],
    validated: &[ValidatedBatch],
    target: Compression,
    levels: &CompressionLevels,
    limit: usize,
) -> Result<Option<Vec<u8>>> {
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
    let mut position = 0;
    for v in validated {
        let size = v.header.total_size();
        let batch = &records[position..position + size];
        position += size;
        if !needs(v)? {
            out.extend_from_slice(batch);
            continue;
        }
        let area = crate::batch::record_area(batch, &v.header, limit)?;
        let body = target.compress_with(&area, levels);
        let start = out.len();
        out.extend_from_slice(&batch[..BATCH_HEADER_LEN]);
        out.extend_from_slice(&body);
        let written = &mut out[start..];
        let length = (written.len() - LENGTH_AT - 4) as i32;
        written[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
        let attributes = (v.header.attributes & !0x07) | i16::from(target.id());
        written[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        let crc = compute_crc(written);
        written[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{record_area, validate, BatchHeader, ValidationLimits};
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
        let out = to_codec(
            &records,
            &validated(&records),
            Compression::Zstd,
            &CompressionLevels::default(),
            1 << 20,
        )
        .unwrap()
        .unwrap();
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
        assert!(to_codec(
            &records,
            &validated(&records),
            Compression::Lz4,
            &CompressionLevels::default(),
            1 << 20
        )
        .unwrap()
        .is_none());
        let marker = crate::transactions::TxnMarker {
            producer_id: 7,
            producer_epoch: 2,
            coordinator_epoch: 0,
            commit: true,
        }
        .to_batch(5);
        assert!(to_codec(
            &marker,
            &validated(&marker),
            Compression::Gzip,
            &CompressionLevels::default(),
            1 << 20
        )
        .unwrap()
        .is_none());
    }

    #[test]
    fn uncompressed_target_decompresses() {
        let records = batch(Compression::Snappy, &["x", "y"], 0);
        let out = to_codec(
            &records,
            &validated(&records),
            Compression::None,
            &CompressionLevels::default(),
            1 << 20,
        )
        .unwrap()
        .unwrap();
        let v = validated(&out);
        assert_eq!(v[0].header.compression().unwrap(), Compression::None);
        assert!(out.windows(50).any(|w| w == "x".repeat(50).as_bytes()));
        assert_eq!(keys_and_values(&out), keys_and_values(&records));
    }
}
