//go:build linux

package watch

import (
	"io/fs"
	"syscall"
)

// sysStat returns the device, inode and change time (ns) of a file. The
// change time moves on every write and metadata change, even when a copy
// restores the modification time (cp -p).
func sysStat(fi fs.FileInfo) (dev, ino uint64, ctime int64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0
	}
	return uint64(st.Dev), st.Ino, st.Ctim.Nano()
}
