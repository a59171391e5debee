package evaluate

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"math"
	mrand "math/rand/v2"
	"sync"
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

// idSources are ChaCha8 generators, each seeded with 32 bytes from
// crypto/rand: a cryptographically strong stream per generator, so ids
// cannot be predicted from earlier ones (a counter or a fixed seed could
// be: anyone who saw one id could name the next request's and post labels
// for it), at the cost of no system call per id.
var idSources = sync.Pool{New: func() any {
	var seed [32]byte
	_, _ = rand.Read(seed[:]) // never fails (Go 1.24+)
	return mrand.NewChaCha8(seed)
}}

// NewRequestID returns a new request id, 32 lowercase hex digits: 128 bits
// from a ChaCha8 stream seeded from crypto/rand, so ids are unique across
// processes and unpredictable. Sampling hashes the whole id. Safe for
// concurrent use.
func NewRequestID() string {
	src := idSources.Get().(*mrand.ChaCha8)
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], src.Uint64())
	binary.LittleEndian.PutUint64(b[8:], src.Uint64())
	idSources.Put(src)
	return hex.EncodeToString(b[:])
}

// finite reports whether f is neither NaN nor infinite.
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
