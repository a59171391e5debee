//go:build !linux

package monitor

func lowerPriority() {}
