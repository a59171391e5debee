package evaluate

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"math"
	"sync/atomic"
)

// Sampled reports whether the request with this id is in a sample of the
// given rate (0 = none, 1 = all). The decision is a pure function of id and
// rate, so every component that sees the id (the agent, a shadow, the
// collector) makes the same one, and the sample at a lower rate is a subset
// of the sample at a higher rate.
//
// The contract, for implementations in other languages: take the 64-bit
// FNV-1a hash of the id's bytes, mix it with MurmurHash3's fmix64 finalizer
// (FNV-1a alone leaves ids that differ only in their last characters with
// nearly the same high bits), and compare its top 53 bits divided by 2^53,
// a number in [0, 1), with rate: the request is sampled when it is lower.
// rate <= 0 or NaN samples nothing, rate >= 1 everything.
//
// Safe for concurrent use; it does not allocate.
func Sampled(requestID string, rate float64) bool {
	switch {
	case rate >= 1:
		return true
	case !(rate > 0): // also NaN
		return false
	}
	return fraction(requestID) < rate
}

// fraction maps id uniformly onto [0, 1); see Sampled.
func fraction(id string) float64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= prime64
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return float64(h>>11) / (1 << 53)
}

// idPrefix is 8 random bytes chosen once per process; idCounter numbers the
// ids this process hands out.
var (
	idPrefix  = func() [8]byte { var b [8]byte; _, _ = rand.Read(b[:]); return b }()
	idCounter atomic.Uint64
)

// NewRequestID returns a new request id, 32 lowercase hex digits: a random
// per-process prefix and a counter, so ids are unique across processes
// (with the prefix's 64 random bits) and cost no system call on the
// request path (crypto/rand per request did). Sampling hashes the whole id,
// so consecutive ids are sampled independently. Safe for concurrent use.
func NewRequestID() string {
	var b [16]byte
	copy(b[:8], idPrefix[:])
	binary.BigEndian.PutUint64(b[8:], idCounter.Add(1))
	return hex.EncodeToString(b[:])
}

// finite reports whether f is neither NaN nor infinite.
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
