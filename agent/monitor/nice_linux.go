package monitor

import (
	"runtime"
	"syscall"
)

// lowerPriority pins the calling goroutine to its OS thread and gives the
// thread the lowest scheduling priority (nice 19), so shadow inferences,
// which ONNX Runtime runs on the calling thread, yield the CPU to the
// primary path whenever it needs it. Linux lets a thread set its own nice
// value without privileges (raising it).
func lowerPriority() {
	runtime.LockOSThread()
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), 19)
}
