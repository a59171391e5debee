package oip

import (
	"encoding/json"
	"unsafe"
)

// A decoder for the common shape of a REST request's JSON, without
// reflection and without encoding/json's two passes over the whole text
// (validate, then decode, which for a request that is mostly a "data" array
// means scanning that array twice at a few ns per byte). It accepts a
// strict subset of JSON: the known keys of restRequest and restTensor
// spelled exactly, each at most once; strings of printable ASCII without
// escapes; "data" arrays validated here (numbers by JSON's grammar,
// strings, literals, nesting), "parameters" and "outputs" handed to
// encoding/json as sub-documents. Anything else (other keys, another
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
			return p.sub(&w.Parameters)
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

func (p *fastParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

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
			return p.sub(&t.Parameters)
		default:
			p.ws()
			start := p.i
			if p.peek() != '[' || !p.skip(0) {
				return false
			}
			t.Data = p.b[start:p.i]
			return true
		}
	})
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

// number skips a number in JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *fastParser) number() bool {
	b, i := p.b, p.i
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
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
		if i == d {
			return false
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
			return false
		}
	}
	p.i = i
	return true
}
