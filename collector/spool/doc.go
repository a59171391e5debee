// Package spool is the collector's durable on-disk write-ahead spool.
//
// The collector acknowledges an OTLP request only once it is in the spool;
// a writer goroutine later reads the records in order, inserts them into
// ClickHouse in batches and acks them. Nothing acknowledged is lost across
// a crash (SIGKILL or, with SyncAlways, power loss) and restart, and the
// unacked bytes never exceed Options.MaxBytes (Append returns ErrFull; the
// receiver answers RESOURCE_EXHAUSTED / 429).
//
// # Files
//
// A spool directory holds:
//
//   - segment files named by the seq of their first record, zero-padded to
//     20 digits (00000000000000000001.seg). Each is a run of records with
//     consecutive seqs: length (uint32) | crc32c (Castagnoli) over seq and
//     data (uint32) | seq (uint64) | data, little-endian. The active
//     segment may end in zeroed, preallocated space.
//   - spool.state: the ack position, the highest seq known committed and
//     the writer's intent, with a checksum. It is replaced atomically (write
//     spool.state.tmp, fsync, rename, fsync the directory).
//   - spool.id: 16 hex digits made at the first Open (Spool.ID): seqs are
//     per spool, so names built of seqs that must differ between spools
//     (the collectors' deduplication tokens) carry it.
//   - LOCK: flocked by the process that has the spool open.
//
// # Durability
//
// Appends are encoded into memory and written by one committer goroutine.
// Under SyncAlways an Append returns after the fsync that covers it; all
// Appends that arrive while an fsync runs are written and fsynced together
// by the next one (group commit), so throughput grows with concurrency
// rather than being one fsync per record. Under SyncAlways the active
// segment is preallocated with zeros, 4 MiB at a time, because fsync of
// writes into already-allocated blocks needs no journal commit (about 3x
// faster on ext4). Creating a segment fsyncs the directory before any
// record in it is acknowledged; a segment is trimmed and fsynced before the
// next one is created; deleting acked segments fsyncs the directory.
//
// Read only sees committed records (fsynced, except under SyncNever), so
// the writer never inserts or acks a record that a crash could take back,
// and seqs handed to the writer are never reused.
//
// # Recovery and corruption
//
// Open scans every retained segment and checks every checksum. Since each
// segment is fsynced before the next is created, a bad or partial record
// can only be a torn write in the last segment, after the last fsync: Open
// truncates it and logs a warning (the records were never acknowledged).
// Anything else that loses unacked records is corruption: a bad record
// before the end of an older segment, a missing segment, a torn tail that
// cuts into records known committed, a damaged state file. By default Open
// then refuses with a *CorruptError naming the file, offset and lost seqs,
// and changes nothing, so an operator can inspect the files; with
// Options.SkipCorrupt it logs each lost range at error level and serves the
// rest (the report repeats at each Open until the writer acks past it).
// Losses at or below the ack position are ignored.
//
// # Reading
//
// Recent records (Options.CacheBytes, default 32 MiB) are kept in memory,
// so the writer, which usually reads what was just appended, reads without
// touching the disk; of records appended with AppendHeld only the end
// offset is kept (their appender holds them decoded for the writer, see
// collector/ingest's row cache); older ones are read through a separate file handle
// whose position is kept between Reads. Memory stays bounded by CacheBytes
// plus 16 MiB of not-yet-written records plus one read block (1 MiB, or
// the largest record).
//
// # Exactly-once inserts
//
// Before inserting records [first, last] the writer calls SetIntent(first,
// last), then inserts with a deduplication token derived from the range,
// then calls Ack(last), which clears the intent. After a crash Intent
// returns the range, and the writer re-inserts exactly those records with
// the same token, which the store deduplicates.
package spool
