package oip

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// Raw tensor contents, as carried by gRPC raw_input_contents /
// raw_output_contents and by Triton's binary tensor extension: elements in
// row-major order, little-endian; BOOL is one byte per element (0 or 1);
// BYTES is each element as a 4-byte little-endian length then its bytes.

// DecodeRaw decodes raw contents for a tensor of datatype d and shape. The
// byte count must match the shape exactly. Fixed-size data is copied, so the
// result does not alias b.
func DecodeRaw(d Datatype, shape []int64, b []byte) (any, error) {
	n, err := NumElements(shape)
	if err != nil {
		return nil, err
	}
	if d == BYTES {
		return decodeRawBytes(n, b)
	}
	size := d.Size()
	if size == 0 {
		return nil, fmt.Errorf("unknown datatype %q", d)
	}
	if len(b) != n*size {
		return nil, fmt.Errorf("%s shape %v needs %d bytes of raw data, got %d", d, shape, n*size, len(b))
	}
	data, _ := MakeData(d, n)
	if n == 0 {
		return data, nil
	}
	if d == BOOL {
		out := data.([]bool)
		for i, c := range b {
			if c > 1 {
				return nil, fmt.Errorf("BOOL element %d is %d; want 0 or 1", i, c)
			}
			out[i] = c == 1
		}
		return out, nil
	}
	copy(rawBytes(data), b)
	if !littleEndian {
		swapInPlace(rawBytes(data), size)
	}
	return data, nil
}

func decodeRawBytes(n int, b []byte) ([][]byte, error) {
	out := make([][]byte, 0, min(n, len(b)/4+1))
	for i := 0; i < n; i++ {
		if len(b) < 4 {
			return nil, fmt.Errorf("BYTES element %d: raw data ends before its 4-byte length", i)
		}
		l := binary.LittleEndian.Uint32(b)
		b = b[4:]
		if uint64(l) > uint64(len(b)) {
			return nil, fmt.Errorf("BYTES element %d: length %d exceeds the %d bytes left", i, l, len(b))
		}
		e := make([]byte, l) // never nil, so an empty element decodes as []byte{}
		copy(e, b[:l])
		out = append(out, e)
		b = b[l:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("BYTES raw data has %d bytes after its %d elements", len(b), n)
	}
	return out, nil
}

// AppendRaw appends the raw contents of data (a Tensor.Data slice) to dst.
func AppendRaw(dst []byte, data any) ([]byte, error) {
	switch v := data.(type) {
	case []bool:
		for _, x := range v {
			if x {
				dst = append(dst, 1)
			} else {
				dst = append(dst, 0)
			}
		}
		return dst, nil
	case [][]byte:
		for _, x := range v {
			if uint64(len(x)) > math.MaxUint32 {
				return nil, fmt.Errorf("BYTES element of %d bytes is too large", len(x))
			}
			dst = binary.LittleEndian.AppendUint32(dst, uint32(len(x)))
			dst = append(dst, x...)
		}
		return dst, nil
	}
	if Len(data) < 0 {
		return nil, fmt.Errorf("unsupported tensor data %T", data)
	}
	raw := rawBytes(data)
	start := len(dst)
	dst = append(dst, raw...)
	if !littleEndian {
		swapInPlace(dst[start:], elemSize(data))
	}
	return dst, nil
}

// RawSize returns the size in bytes of data's raw contents.
func RawSize(data any) int {
	switch v := data.(type) {
	case []bool:
		return len(v)
	case [][]byte:
		n := 0
		for _, x := range v {
			n += 4 + len(x)
		}
		return n
	}
	return len(rawBytes(data))
}

// rawBytes views a fixed-size numeric slice as bytes, without copying.
func rawBytes(data any) []byte {
	switch v := data.(type) {
	case []uint8:
		return v
	case []int8:
		return sliceBytes(v)
	case []uint16:
		return sliceBytes(v)
	case []int16:
		return sliceBytes(v)
	case []uint32:
		return sliceBytes(v)
	case []int32:
		return sliceBytes(v)
	case []uint64:
		return sliceBytes(v)
	case []int64:
		return sliceBytes(v)
	case []float32:
		return sliceBytes(v)
	case []float64:
		return sliceBytes(v)
	}
	return nil
}

func elemSize(data any) int {
	switch data.(type) {
	case []uint16, []int16:
		return 2
	case []uint32, []int32, []float32:
		return 4
	case []uint64, []int64, []float64:
		return 8
	}
	return 1
}

func sliceBytes[T any](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var zero T
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(zero)))
}

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

func swapInPlace(b []byte, size int) {
	if size <= 1 {
		return
	}
	for i := 0; i+size <= len(b); i += size {
		for l, r := i, i+size-1; l < r; l, r = l+1, r-1 {
			b[l], b[r] = b[r], b[l]
		}
	}
}
