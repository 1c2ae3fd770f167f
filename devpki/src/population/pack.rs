//! Pack files: many small records (certificates, tokens) in one data file, with an index of
//! little-endian u64 offsets (`records + 1` of them). A reader opens both and reads one record
//! with two positioned reads, holding nothing in memory: a million users cost two file handles.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::PopulationError;

/// Appends records in order.
#[derive(Debug)]
pub(crate) struct PackWriter {
    data: BufWriter<File>,
    index: BufWriter<File>,
    offset: u64,
    path: PathBuf,
}

impl PackWriter {
    /// Creates (truncates) `stem.pack` and `stem.idx`.
    pub(crate) fn create(stem: &Path) -> Result<Self, PopulationError> {
        let data_path = stem.with_extension("pack");
        let data = File::create(&data_path).map_err(|e| PopulationError::io(&data_path, e))?;
        let index_path = stem.with_extension("idx");
        let index = File::create(&index_path).map_err(|e| PopulationError::io(&index_path, e))?;
        let mut this =
            Self { data: BufWriter::new(data), index: BufWriter::new(index), offset: 0, path: stem.to_path_buf() };
        this.write_offset()?;
        Ok(this)
    }

    /// Appends one record (possibly empty).
    pub(crate) fn push(&mut self, record: &[u8]) -> Result<(), PopulationError> {
        self.data.write_all(record).map_err(|e| PopulationError::io(&self.path, e))?;
        self.offset += record.len() as u64;
        self.write_offset()
    }

    fn write_offset(&mut self) -> Result<(), PopulationError> {
        self.index.write_all(&self.offset.to_le_bytes()).map_err(|e| PopulationError::io(&self.path, e))
    }

    /// Flushes both files to disk.
    pub(crate) fn finish(mut self) -> Result<(), PopulationError> {
        let io = |e| PopulationError::io(&self.path, e);
        self.data.flush().map_err(io)?;
        self.index.flush().map_err(io)?;
        self.data.get_ref().sync_all().map_err(io)?;
        self.index.get_ref().sync_all().map_err(io)
    }
}

/// Reads records by number.
#[derive(Debug)]
pub(crate) struct PackReader {
    data: File,
    index: File,
    records: u64,
    path: PathBuf,
}

impl PackReader {
    /// Opens `stem.pack` and `stem.idx`, expecting `records` records.
    pub(crate) fn open(stem: &Path, records: u64) -> Result<Self, PopulationError> {
        let data_path = stem.with_extension("pack");
        let index_path = stem.with_extension("idx");
        let data = File::open(&data_path).map_err(|e| PopulationError::io(&data_path, e))?;
        let index = File::open(&index_path).map_err(|e| PopulationError::io(&index_path, e))?;
        let len = index.metadata().map_err(|e| PopulationError::io(&index_path, e))?.len();
        if len != (records + 1) * 8 {
            return Err(PopulationError::Corrupt {
                path: index_path,
                message: format!("{len} bytes of index for {records} records"),
            });
        }
        Ok(Self { data, index, records, path: stem.to_path_buf() })
    }

    /// Record `n`.
    pub(crate) fn read(&self, n: u64) -> Result<Vec<u8>, PopulationError> {
        if n >= self.records {
            return Err(PopulationError::Corrupt {
                path: self.path.clone(),
                message: format!("record {n} of {}", self.records),
            });
        }
        let mut bounds = [0u8; 16];
        self.index.read_exact_at(&mut bounds, n * 8).map_err(|e| PopulationError::io(&self.path, e))?;
        let (start, end) = bounds.split_at(8);
        let start = u64::from_le_bytes(start.try_into().unwrap_or_default());
        let end = u64::from_le_bytes(end.try_into().unwrap_or_default());
        // A record is a certificate or a token: anything past 1 MiB is a broken index.
        let len = end.checked_sub(start).filter(|len| *len <= 1 << 20).ok_or_else(|| PopulationError::Corrupt {
            path: self.path.clone(),
            message: format!("record {n} spans {start}..{end}"),
        })?;
        let mut record = vec![0u8; len as usize];
        self.data.read_exact_at(&mut record, start).map_err(|e| PopulationError::io(&self.path, e))?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_including_empty_ones() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("things");
        let mut w = PackWriter::create(&stem).unwrap();
        for r in [&b"one"[..], b"", b"three!"] {
            w.push(r).unwrap();
        }
        w.finish().unwrap();
        let r = PackReader::open(&stem, 3).unwrap();
        assert_eq!(r.read(0).unwrap(), b"one");
        assert_eq!(r.read(1).unwrap(), b"");
        assert_eq!(r.read(2).unwrap(), b"three!");
        assert!(r.read(3).is_err());
        assert!(PackReader::open(&stem, 4).is_err(), "index length is checked");
    }
}
