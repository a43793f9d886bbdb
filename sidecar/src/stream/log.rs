//! The publisher's append-only message log in `dataDir`: nothing ingested is lost by a
//! restart, and no batch is anchored twice.
//!
//! Two files:
//! - `messages.log`: one record per message, `len (u32 LE) ‖ bytes ‖ keccak256(bytes)[..4]`;
//!   a record cut short by a crash (or failing its checksum) ends the log and is truncated
//!   away on open — it was never acknowledged as ingested.
//! - `batches.jsonl`: one JSON line per event, `{"sealed":{number,first,count,root}}` when a
//!   batch is closed (written and synced BEFORE its root is sent to the chain) and
//!   `{"anchored":number}` after the receipt.
//!
//! A batch is a fixed range of message indexes with a fixed root, so a sealed batch whose
//! anchoring was interrupted is re-sent unchanged. On start the publisher reconciles with the
//! chain's `lastBatch` for the stream: sealed batches up to it are anchored (a receipt lost by
//! the crash), later ones are sent; the contract refuses a batch number twice anyway.
//! Messages are written with one `write` each (a killed process loses nothing the kernel
//! holds); files are synced at every seal.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use alloy::primitives::{B256, keccak256};
use serde::{Deserialize, Serialize};

use super::merkle;

const MESSAGES: &str = "messages.log";
const BATCHES: &str = "batches.jsonl";
/// Largest message accepted (a record's length is a u32, and a sensor reading is small).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Why the log cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("message log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("message log {path}: line {line} is not a batch record: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
}

/// A closed batch: messages `first .. first + count` with Merkle root `root`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedBatch {
    pub number: u64,
    pub first: u64,
    pub count: u32,
    pub root: B256,
}

impl SealedBatch {
    pub fn contains(&self, index: u64) -> bool {
        index >= self.first && index < self.first + u64::from(self.count)
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum BatchRecord {
    Sealed(SealedBatch),
    Anchored(u64),
}

/// The open log.
#[derive(Debug)]
pub struct MessageLog {
    dir: PathBuf,
    messages: File,
    batches_file: File,
    /// Offset and length of each message's bytes.
    offsets: Vec<(u64, u32)>,
    leaves: Vec<B256>,
    end: u64,
    batches: Vec<SealedBatch>,
    /// Highest anchored batch number (0: none).
    anchored_upto: u64,
}

impl MessageLog {
    /// Opens (or creates) the log in `dir`, dropping a torn last record.
    pub fn open(dir: &Path) -> Result<Self, LogError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| LogError::Io {
                path: path.clone(),
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mpath = dir.join(MESSAGES);
        let mut messages = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&mpath)
            .map_err(io(&mpath))?;
        // One pass, one record in memory at a time: only offsets and leaves are kept.
        let file_len = messages.metadata().map_err(io(&mpath))?.len();
        let (mut offsets, mut leaves, mut at) = (Vec::new(), Vec::new(), 0u64);
        {
            let mut reader = BufReader::new(&mut messages);
            let mut len_bytes = [0u8; 4];
            let mut record = Vec::new();
            loop {
                if reader.read_exact(&mut len_bytes).is_err() {
                    break;
                }
                let len = u32::from_le_bytes(len_bytes) as usize;
                if len > MAX_MESSAGE_BYTES || at + 8 + len as u64 > file_len {
                    break;
                }
                record.resize(len + 4, 0);
                if reader.read_exact(&mut record).is_err() {
                    break;
                }
                let (msg, sum) = record.split_at(len);
                if keccak256(msg)[..4] != *sum {
                    break;
                }
                leaves.push(merkle::leaf(offsets.len() as u64, msg));
                offsets.push((at + 4, len as u32));
                at += 8 + len as u64;
            }
        }
        if at < file_len {
            tracing::warn!(path = %mpath.display(), kept = offsets.len(), dropped_bytes = file_len - at, "message log ends in a torn record, truncating it");
            messages.set_len(at).map_err(io(&mpath))?;
        }
        messages.seek(SeekFrom::End(0)).map_err(io(&mpath))?;

        let bpath = dir.join(BATCHES);
        let mut batches_file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&bpath)
            .map_err(io(&bpath))?;
        let (mut batches, mut anchored_upto, mut good) = (Vec::<SealedBatch>::new(), 0, 0u64);
        let mut reader = BufReader::new(&mut batches_file);
        let mut line = String::new();
        let mut n = 0;
        loop {
            line.clear();
            let read = reader.read_line(&mut line).map_err(io(&bpath))?;
            if read == 0 || !line.ends_with('\n') {
                break; // end, or a line torn by a crash (its seal never completed)
            }
            n += 1;
            let record: BatchRecord =
                serde_json::from_str(&line).map_err(|e| LogError::Corrupt {
                    path: bpath.clone(),
                    line: n,
                    reason: e.to_string(),
                })?;
            match record {
                BatchRecord::Sealed(b) => {
                    let expected_first = batches.last().map_or(0, |l| l.first + u64::from(l.count));
                    if b.first != expected_first
                        || b.first + u64::from(b.count) > offsets.len() as u64
                    {
                        return Err(LogError::Corrupt {
                            path: bpath,
                            line: n,
                            reason: format!(
                                "batch {} covers messages {}..{} but the log holds {} messages from {expected_first}",
                                b.number,
                                b.first,
                                b.first + u64::from(b.count),
                                offsets.len()
                            ),
                        });
                    }
                    batches.push(b);
                }
                BatchRecord::Anchored(number) => anchored_upto = anchored_upto.max(number),
            }
            good += read as u64;
        }
        drop(reader);
        batches_file.set_len(good).map_err(io(&bpath))?;
        batches_file.seek(SeekFrom::End(0)).map_err(io(&bpath))?;
        let end = at;
        Ok(Self {
            dir: dir.to_owned(),
            messages,
            batches_file,
            offsets,
            leaves,
            end,
            batches,
            anchored_upto,
        })
    }

    fn io_error(&self, file: &str) -> impl Fn(std::io::Error) -> LogError + use<> {
        let path = self.dir.join(file);
        move |source| LogError::Io {
            path: path.clone(),
            source,
        }
    }

    /// Appends one message; returns its stream index.
    pub fn append(&mut self, message: &[u8]) -> Result<u64, LogError> {
        if message.len() > MAX_MESSAGE_BYTES {
            return Err(LogError::TooLarge(message.len()));
        }
        let index = self.offsets.len() as u64;
        let mut record = Vec::with_capacity(message.len() + 8);
        record.extend_from_slice(&(message.len() as u32).to_le_bytes());
        record.extend_from_slice(message);
        record.extend_from_slice(&keccak256(message)[..4]);
        self.messages
            .write_all(&record)
            .map_err(self.io_error(MESSAGES))?;
        self.offsets.push((self.end + 4, message.len() as u32));
        self.leaves.push(merkle::leaf(index, message));
        self.end += record.len() as u64;
        Ok(index)
    }

    /// How many messages the log holds.
    pub fn len(&self) -> u64 {
        self.offsets.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The bytes of message `index`.
    pub fn read(&self, index: u64) -> Result<Option<Vec<u8>>, LogError> {
        let Some(&(offset, len)) = self.offsets.get(index as usize) else {
            return Ok(None);
        };
        let mut buf = vec![0; len as usize];
        self.messages
            .read_exact_at(&mut buf, offset)
            .map_err(self.io_error(MESSAGES))?;
        Ok(Some(buf))
    }

    /// Messages not in any sealed batch.
    pub fn pending(&self) -> u64 {
        self.len() - self.sealed_end()
    }

    fn sealed_end(&self) -> u64 {
        self.batches
            .last()
            .map_or(0, |b| b.first + u64::from(b.count))
    }

    /// Closes the next batch (at most `max` pending messages) as number `number`: computes its
    /// root and records it durably before anyone may anchor it. `None` without pending messages.
    pub fn seal(&mut self, number: u64, max: u32) -> Result<Option<SealedBatch>, LogError> {
        let first = self.sealed_end();
        let count = self.pending().min(u64::from(max)) as u32;
        if count == 0 {
            return Ok(None);
        }
        let leaves = &self.leaves[first as usize..(first + u64::from(count)) as usize];
        let root = merkle::root(leaves).expect("count > 0");
        let batch = SealedBatch {
            number,
            first,
            count,
            root,
        };
        self.messages.sync_data().map_err(self.io_error(MESSAGES))?;
        self.write_record(&BatchRecord::Sealed(batch))?;
        self.batches.push(batch);
        Ok(Some(batch))
    }

    fn write_record(&mut self, record: &BatchRecord) -> Result<(), LogError> {
        let mut line = serde_json::to_string(record).expect("serialisable");
        line.push('\n');
        self.batches_file
            .write_all(line.as_bytes())
            .map_err(self.io_error(BATCHES))?;
        self.batches_file
            .sync_data()
            .map_err(self.io_error(BATCHES))
    }

    /// Records that batch `number` (and every batch before it) is anchored.
    pub fn mark_anchored(&mut self, number: u64) -> Result<(), LogError> {
        if number <= self.anchored_upto {
            return Ok(());
        }
        self.write_record(&BatchRecord::Anchored(number))?;
        self.anchored_upto = number;
        Ok(())
    }

    /// Highest anchored batch number (0: none).
    pub fn anchored_upto(&self) -> u64 {
        self.anchored_upto
    }

    /// Sealed batches, oldest first.
    pub fn batches(&self) -> &[SealedBatch] {
        &self.batches
    }

    /// Sealed batches not yet anchored, oldest first.
    pub fn unanchored(&self) -> Vec<SealedBatch> {
        self.batches
            .iter()
            .filter(|b| b.number > self.anchored_upto)
            .copied()
            .collect()
    }

    /// The number the next sealed batch gets, given the chain's last anchored batch.
    pub fn next_batch_number(&self, chain_last: u64) -> u64 {
        self.batches.last().map_or(0, |b| b.number).max(chain_last) + 1
    }

    /// The sealed batch holding message `index`.
    pub fn batch_of(&self, index: u64) -> Option<&SealedBatch> {
        let i = self
            .batches
            .partition_point(|b| b.first + u64::from(b.count) <= index);
        self.batches.get(i).filter(|b| b.contains(index))
    }

    /// The Merkle tree of a sealed batch.
    pub fn tree(&self, batch: &SealedBatch) -> merkle::Tree {
        let range = batch.first as usize..(batch.first + u64::from(batch.count)) as usize;
        merkle::Tree::new(self.leaves[range].to_vec()).expect("a sealed batch is never empty")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_and_drops_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MessageLog::open(dir.path()).unwrap();
        for i in 0..5 {
            assert_eq!(log.append(format!("{{\"i\":{i}}}").as_bytes()).unwrap(), i);
        }
        let b1 = log.seal(1, 3).unwrap().unwrap();
        assert_eq!((b1.first, b1.count), (0, 3));
        log.mark_anchored(1).unwrap();
        let b2 = log.seal(2, 3).unwrap().unwrap();
        assert_eq!((b2.first, b2.count), (3, 2));
        assert!(log.seal(3, 3).unwrap().is_none());
        log.append(b"{\"i\":5}").unwrap();
        drop(log);
        // A crash in the middle of a message record and of a batch line.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(MESSAGES))
            .unwrap();
        f.write_all(&[9, 0, 0, 0, b'{']).unwrap();
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(BATCHES))
            .unwrap();
        f.write_all(b"{\"sealed\":{\"num").unwrap();

        let mut log = MessageLog::open(dir.path()).unwrap();
        assert_eq!(log.len(), 6);
        assert_eq!(log.read(5).unwrap().unwrap(), b"{\"i\":5}");
        assert_eq!(log.read(1).unwrap().unwrap(), b"{\"i\":1}");
        assert_eq!(log.anchored_upto(), 1);
        assert_eq!(log.unanchored(), vec![b2]);
        assert_eq!(log.pending(), 1);
        assert_eq!(log.batch_of(4), Some(&b2));
        assert_eq!(log.batch_of(0), Some(&b1));
        assert_eq!(log.batch_of(5), None);
        assert_eq!(log.next_batch_number(0), 3);
        assert_eq!(log.next_batch_number(7), 8);
        // Appending after the truncated tail keeps the log readable.
        log.append(b"{\"i\":6}").unwrap();
        drop(log);
        let log = MessageLog::open(dir.path()).unwrap();
        assert_eq!(log.len(), 7);
        assert_eq!(log.read(6).unwrap().unwrap(), b"{\"i\":6}");
        let tree = log.tree(&b2);
        assert_eq!(tree.root(), b2.root);
        let proof = tree.proof(1).unwrap();
        assert!(merkle::verify(b2.root, 4, b"{\"i\":4}", &proof));
    }
}
