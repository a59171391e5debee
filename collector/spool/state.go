package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/drover-ml/drover/shared/durable"
)

const (
	stateFile  = "spool.state"
	stateTemp  = "spool.state.tmp"
	stateMagic = "DRSPOOL1"
	stateSize  = 8 + 5*8 + 4
)

// ackState is what the spool keeps besides its segments: the ack position,
// the highest seq known committed (so seqs never repeat, even after every
// segment is deleted) and the writer's in-flight intent.
type ackState struct {
	acked       uint64
	lastSeq     uint64
	hasIntent   bool
	intentFirst uint64
	intentLast  uint64
}

func (st ackState) marshal() []byte {
	b := make([]byte, 0, stateSize)
	b = append(b, stateMagic...)
	var flags uint64
	if st.hasIntent {
		flags = 1
	}
	for _, v := range []uint64{st.acked, st.lastSeq, flags, st.intentFirst, st.intentLast} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func unmarshalState(b []byte) (ackState, error) {
	if len(b) != stateSize || string(b[:8]) != stateMagic {
		return ackState{}, fmt.Errorf("%d bytes, want %d starting with %q", len(b), stateSize, stateMagic)
	}
	if got, want := crc32.Checksum(b[:stateSize-4], castagnoli), binary.LittleEndian.Uint32(b[stateSize-4:]); got != want {
		return ackState{}, fmt.Errorf("checksum %08x, want %08x", got, want)
	}
	u := func(i int) uint64 { return binary.LittleEndian.Uint64(b[8+8*i:]) }
	st := ackState{acked: u(0), lastSeq: u(1), hasIntent: u(2)&1 != 0, intentFirst: u(3), intentLast: u(4)}
	if st.hasIntent && (st.intentFirst == 0 || st.intentFirst > st.intentLast) {
		return ackState{}, fmt.Errorf("bad intent [%d, %d]", st.intentFirst, st.intentLast)
	}
	return st, nil
}

// readState loads dir's state file; a missing file is the zero state, a
// damaged one a *CorruptError.
func readState(dir string) (ackState, error) {
	path := filepath.Join(dir, stateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ackState{}, nil
	}
	if err != nil {
		return ackState{}, fmt.Errorf("read spool state: %w", err)
	}
	st, err := unmarshalState(b)
	if err != nil {
		return ackState{}, &CorruptError{Path: path, Offset: -1, Reason: err.Error()}
	}
	return st, nil
}

// writeState replaces dir's state file atomically and durably (write
// spool.state.tmp, fsync, rename, fsync dir).
func writeState(dir string, st ackState) error {
	if err := durable.WriteFile(filepath.Join(dir, stateFile), st.marshal(), 0o640); err != nil {
		return fmt.Errorf("write spool state: %w", err)
	}
	return nil
}
