package spool

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// maxIov bounds the buffers of one pwritev call (IOV_MAX is 1024 on Linux).
const maxIov = 1024

// pwritev writes bufs, in order, at off of f with vectored writes, so that
// records go to the OS from the slices they were appended in, without
// being copied into one buffer first.
func pwritev(f *os.File, bufs [][]byte, off int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	for {
		for len(bufs) > 0 && len(bufs[0]) == 0 { // empty records
			bufs = bufs[1:]
		}
		if len(bufs) == 0 {
			return nil
		}
		iov := bufs[:min(len(bufs), maxIov)]
		var n int
		var werr error
		if err := rc.Write(func(fd uintptr) bool {
			for {
				n, werr = unix.Pwritev(int(fd), iov, off)
				if werr != unix.EINTR {
					return true
				}
			}
		}); err != nil {
			return err
		}
		if werr != nil {
			return &os.PathError{Op: "pwritev", Path: f.Name(), Err: werr}
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		off += int64(n)
		// Drop what was written; a partly written buffer continues.
		for n > 0 {
			if n < len(bufs[0]) {
				bufs[0] = bufs[0][n:]
				break
			}
			n -= len(bufs[0])
			bufs = bufs[1:]
		}
	}
}
