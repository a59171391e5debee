package agent

import (
	"context"

	"github.com/drover-ml/drover/agent/config"
)

// reloadLoop applies the configuration file each time Config.Reload
// receives, until ctx is cancelled.
func (a *agent) reloadLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.cfg.Reload:
			_ = a.reload()
		}
	}
}

// reload re-reads the configuration file and applies what can change at
// run time: the version policies and the per-model monitoring settings. A
// file that does not load, or policies that do not validate, change
// nothing; the error is logged and returned.
func (a *agent) reload() error {
	path := a.cfg.ConfigPath
	file, err := config.Load(path)
	if err != nil {
		a.log.Error("SIGHUP: config not reloaded; keeping the current policies", "err", err)
		return err
	}
	if err := a.set.SetPolicies(file.Policies()); err != nil {
		a.log.Error("SIGHUP: policies not applied", "err", err)
		return err
	}
	a.mon.SetSettings(file.MonitorSettings())
	a.log.Info("SIGHUP: version policies reloaded", "config", path)
	return nil
}
