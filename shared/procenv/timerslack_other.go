//go:build !linux

package procenv

import (
	"errors"
	"fmt"
	"time"
)

// TimerSlack is Linux's; elsewhere it is errors.ErrUnsupported.
func TimerSlack() (time.Duration, error) {
	return 0, fmt.Errorf("timer slack: %w", errors.ErrUnsupported)
}

// ExecWithTimerSlack is Linux's; elsewhere it is errors.ErrUnsupported.
func ExecWithTimerSlack(Slack) error {
	return fmt.Errorf("timer slack: %w", errors.ErrUnsupported)
}
