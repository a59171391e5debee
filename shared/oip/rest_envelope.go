package oip

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unsafe"
)

// A decoder for the common shape of a REST request's JSON, without
// reflection and without encoding/json's two passes over the whole text
// (validate, then decode, which for a request that is mostly a "data" array
// means scanning that array twice at a few ns per byte). It accepts a
// strict subset of JSON: the known keys of restRequest and restTensor
// spelled exactly, each at most once; strings of printable ASCII without
// escapes; "data" arrays validated here (numbers by JSON's grammar,
// strings, literals, nesting) and, when shape and datatype came first and
// every leaf is a number, converted here too; flat "parameters" objects
// (strings, numbers, literals) read here, other "parameters" and "outputs"
// handed to encoding/json as sub-documents. Anything else (other keys, another
// spelling, escapes, non-ASCII, null where an object is expected, trailing
// text, deep nesting) makes it give up, and the caller decodes the whole
// header with encoding/json, whose results and errors stay the reference;
// on what it accepts both give the same restRequest (FuzzDecodeEnvelope).

// maxFastDepth bounds the nesting the fast path follows; deeper goes to
// encoding/json.
const maxFastDepth = 32

// decodeRequestFast decodes header into w and reports whether it could.
// On false w is undefined and must be discarded. w's "data" fields alias
// header.
func decodeRequestFast(header []byte, w *restRequest) bool {
	p := fastParser{b: header}
	seen := 0
	ok := p.object(func(key string) bool {
		var bit int
		switch key {
		case "id":
			bit = 1
		case "parameters":
			bit = 2
		case "inputs":
			bit = 4
		case "outputs":
			bit = 8
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		switch bit {
		case 1:
			s, ok := p.str()
			w.ID = s
			return ok
		case 2:
			return p.params(&w.Parameters)
		case 4:
			return p.inputs(&w.Inputs)
		default:
			return p.sub(&w.Outputs)
		}
	})
	if !ok {
		return false
	}
	p.ws()
	return p.i == len(p.b)
}

type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) ws() { p.i = skipSpace(p.b, p.i) }

// peek skips whitespace and returns the next byte (0 at the end).
func (p *fastParser) peek() byte {
	p.ws()
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

// object parses an object, calling field after each key's colon; field
// parses the value.
func (p *fastParser) object(field func(key string) bool) bool {
	if p.peek() != '{' {
		return false
	}
	p.i++
	if p.peek() == '}' {
		p.i++
		return true
	}
	for {
		if p.peek() != '"' {
			return false
		}
		key, ok := p.rawStr()
		if !ok || p.peek() != ':' {
			return false
		}
		p.i++
		if !field(unsafe.String(unsafe.SliceData(key), len(key))) {
			return false
		}
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return true
		default:
			return false
		}
	}
}

// rawStr parses a string of printable ASCII without escapes and returns
// its contents (aliasing b).
func (p *fastParser) rawStr() ([]byte, bool) {
	if p.peek() != '"' {
		return nil, false
	}
	start := p.i + 1
	for j := start; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			p.i = j + 1
			return p.b[start:j], true
		case c < 0x20 || c >= 0x80 || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

func (p *fastParser) str() (string, bool) {
	s, ok := p.rawStr()
	return string(s), ok
}

// params decodes a "parameters" object whose values are strings, numbers,
// true, false or null into a map as encoding/json does (numbers as
// float64, the last of a repeated key); anything else (a nested value, a
// number out of float64's range) goes to encoding/json (sub).
func (p *fastParser) params(out *map[string]any) bool {
	if p.peek() != '{' {
		return p.sub(out)
	}
	start := p.i
	m := make(map[string]any, 2)
	ok := p.object(func(key string) bool {
		var v any
		switch p.peek() {
		case '"':
			s, ok := p.str()
			if !ok {
				return false
			}
			v = s
		case 't', 'f', 'n':
			switch {
			case p.literal("true"):
				v = true
			case p.literal("false"):
				v = false
			case p.literal("null"):
				v = nil
			default:
				return false
			}
		default:
			from := p.i
			if !p.number() {
				return false
			}
			f, err := strconv.ParseFloat(unsafe.String(&p.b[from], p.i-from), 64)
			if err != nil {
				return false
			}
			v = f
		}
		m[strings.Clone(key)] = v
		return true
	})
	if ok {
		*out = m
		return true
	}
	p.i = start
	return p.sub(out)
}

// sub hands the next value to encoding/json.
func (p *fastParser) sub(v any) bool {
	p.ws()
	start := p.i
	if !p.skip(0) {
		return false
	}
	return json.Unmarshal(p.b[start:p.i], v) == nil
}

func (p *fastParser) inputs(out *[]restTensor) bool {
	if p.peek() != '[' {
		return false
	}
	p.i++
	ts := make([]restTensor, 0, 1)
	if p.peek() == ']' {
		p.i++
		*out = ts
		return true
	}
	for {
		ts = append(ts, restTensor{})
		if !p.tensor(&ts[len(ts)-1]) {
			return false
		}
		switch p.peek() {
		case ',':
			p.i++
		case ']':
			p.i++
			*out = ts
			return true
		default:
			return false
		}
	}
}

func (p *fastParser) tensor(t *restTensor) bool {
	seen := 0
	return p.object(func(key string) bool {
		var bit int
		switch key {
		case "name":
			bit = 1
		case "shape":
			bit = 2
		case "datatype":
			bit = 4
		case "parameters":
			bit = 8
		case "data":
			bit = 16
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		switch bit {
		case 1:
			s, ok := p.str()
			t.Name = s
			return ok
		case 2:
			return p.shape(&t.Shape)
		case 4:
			s, ok := p.str()
			t.Datatype = Datatype(s)
			return ok
		case 8:
			return p.params(&t.Parameters)
		default:
			p.ws()
			start := p.i
			if p.peek() != '[' {
				return false
			}
			// With the shape and datatype known, numbers are converted as
			// they are read (one pass over the array, which is most of a
			// request); anything else is validated and kept as text for
			// decodeJSONData.
			if seen&6 == 6 {
				if data, ok := p.shapedNumbers(t.Datatype, t.Shape); ok {
					t.Data, t.parsed = p.b[start:p.i], data
					return true
				}
				p.i = start
			}
			if !p.skip(0) {
				return false
			}
			t.Data = p.b[start:p.i]
			return true
		}
	})
}

// shapedNumbers is numbers for the elements of shape; false for a shape
// that is not valid (decodeTensors says why).
func (p *fastParser) shapedNumbers(d Datatype, shape []int64) (any, bool) {
	n, err := NumElements(shape)
	if err != nil {
		return nil, false
	}
	return p.numbers(d, n)
}

// numbers parses the array at p.i, nested arrays flattened, into the
// slice of datatype d for the n elements a shape needs, when every leaf is
// a number d can hold. It reports false for anything else (p.i is then
// undefined): strings, literals, numbers out of range, other datatypes,
// text that is not JSON, nesting deeper than maxFastDepth.
func (p *fastParser) numbers(d Datatype, n int) (any, bool) {
	switch d {
	case FP32:
		return scanAny(scanArray(p, n, parseFloat32))
	case FP64:
		return scanAny(scanArray(p, n, parseFloat64))
	case INT8:
		return scanAny(scanArray(p, n, parseInt8))
	case INT16:
		return scanAny(scanArray(p, n, parseInt16))
	case INT32:
		return scanAny(scanArray(p, n, parseInt32))
	case INT64:
		return scanAny(scanArray(p, n, parseInt64))
	case UINT8:
		return scanAny(scanArray(p, n, parseUint8))
	case UINT16:
		return scanAny(scanArray(p, n, parseUint16))
	case UINT32:
		return scanAny(scanArray(p, n, parseUint32))
	case UINT64:
		return scanAny(scanArray(p, n, parseUint64))
	}
	return nil, false
}

// A parser of one number at b[i:] returns its value and end, or ok false
// when b[i:] does not start with a JSON number or its value does not fit.
type parseFunc[T any] func(b []byte, i int) (v T, end int, ok bool)

// viaToken makes a parseFunc of a converter of whole tokens.
func viaToken[T any](conv func(string) (T, bool)) parseFunc[T] {
	return func(b []byte, i int) (T, int, bool) {
		j, ok := numberEnd(b, i)
		if !ok {
			var zero T
			return zero, 0, false
		}
		v, ok := conv(unsafe.String(&b[i], j-i))
		return v, j, ok
	}
}

var (
	parseFloat64 = viaToken(convFloat64)
	parseInt8    = viaToken(convInt8)
	parseInt16   = viaToken(convInt16)
	parseInt32   = viaToken(convInt32)
	parseInt64   = viaToken(convInt64)
	parseUint8   = viaToken(convUint8)
	parseUint16  = viaToken(convUint16)
	parseUint32  = viaToken(convUint32)
	parseUint64  = viaToken(convUint64)
)

// scanArray parses a JSON array of numbers (nested arrays flattened, at
// most maxFastDepth deep) at p.i, each number with parse, into a slice for
// the n elements the shape needs. It first reserves room for what the
// array's first innermost bracket can hold (one more than its commas: all
// of a flat array), never more than n, and grows toward n as elements
// come, at most doubling; so a shape the text does not fill (a short or
// empty array, padded with spaces or not) reserves no more than about
// twice what the array holds.
func scanArray[T any](p *fastParser, n int, parse parseFunc[T]) ([]T, bool) {
	b, i := p.b, p.i
	end := bytes.IndexByte(b[i:], ']')
	if end < 0 {
		return nil, false
	}
	out := make([]T, 0, min(n, bytes.Count(b[i:i+end], comma)+1))
	depth := 0
	for {
		// A value, or the end of an array just opened.
		i = skipSpace(b, i)
		if i >= len(b) {
			return nil, false
		}
		closed := false
		if b[i] == '[' {
			if depth++; depth > maxFastDepth {
				return nil, false
			}
			if i = skipSpace(b, i+1); i < len(b) && b[i] == ']' {
				closed = true
			} else {
				continue
			}
		} else {
			v, j, ok := parse(b, i)
			if !ok {
				return nil, false
			}
			if len(out) == cap(out) {
				out = slices.Grow(out, max(1, min(n-len(out), len(out))))
			}
			out = append(out, v)
			i = j
		}
		// After a value: a comma, or the ends of arrays.
		for {
			if closed {
				closed = false
			} else if i = skipSpace(b, i); i < len(b) && b[i] == ',' {
				i++
				break
			} else if i >= len(b) || b[i] != ']' {
				return nil, false
			}
			i++ // the ']'
			if depth--; depth == 0 {
				p.i = i
				return out, true
			}
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// shape parses a flat array of integers that fit an int64.
func (p *fastParser) shape(out *[]int64) bool {
	if p.peek() != '[' {
		return false
	}
	p.i++
	s := make([]int64, 0, 4)
	if p.peek() == ']' {
		p.i++
		*out = s
		return true
	}
	for {
		p.ws()
		start := p.i
		if !p.number() {
			return false
		}
		v, ok := convInt64(unsafe.String(&p.b[start], p.i-start))
		if !ok {
			return false
		}
		s = append(s, v)
		switch p.peek() {
		case ',':
			p.i++
		case ']':
			p.i++
			*out = s
			return true
		default:
			return false
		}
	}
}

// skip validates and skips one JSON value (strings without escapes, at
// most maxFastDepth levels).
func (p *fastParser) skip(depth int) bool {
	if depth > maxFastDepth {
		return false
	}
	switch c := p.peek(); c {
	case '[':
		p.i++
		if p.peek() == ']' {
			p.i++
			return true
		}
		for {
			if !p.skip(depth + 1) {
				return false
			}
			switch p.peek() {
			case ',':
				p.i++
			case ']':
				p.i++
				return true
			default:
				return false
			}
		}
	case '{':
		return p.object(func(string) bool { return p.skip(depth + 1) })
	case '"':
		_, ok := p.rawStr()
		return ok
	case 't':
		return p.literal("true")
	case 'f':
		return p.literal("false")
	case 'n':
		return p.literal("null")
	default:
		return p.number()
	}
}

func (p *fastParser) literal(s string) bool {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

// number skips a number in JSON's grammar.
func (p *fastParser) number() bool {
	i, ok := numberEnd(p.b, p.i)
	if ok {
		p.i = i
	}
	return ok
}

// numberEnd returns the end of the number at b[i:] in JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func numberEnd(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
		if i == d {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
		if i == d {
			return 0, false
		}
	}
	return i, true
}
