// Package procenv is for configuration keys that set how the process
// runs: Go runtime settings an environment variable sets too (GOGC,
// GOMEMLIMIT, GOMAXPROCS), where the runtime has read the environment
// before the configuration and the environment wins; and the threads'
// timer slack, which only starting over gives every thread.
package procenv

import (
	"log/slog"
	"os"
	"strings"
)

// Wins reports whether the environment variable env is set and not empty
// (the runtime ignores an empty one), and if so logs that it wins over the
// configuration key (a path such as "memory.gc_percent") and its value.
func Wins(log *slog.Logger, env, key string, value any) bool {
	v := os.Getenv(env)
	if v == "" {
		return false
	}
	if log == nil {
		log = slog.Default()
	}
	log.Info(key+": "+env+" is set in the environment and wins", env, v, key[strings.LastIndex(key, ".")+1:], value)
	return true
}
