package addons

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"hop3/runtime/supervisor"
)

// DefaultBackupSchedule is when every add-on is backed up unless told
// otherwise: daily at 03:30, server time.
const DefaultBackupSchedule = "30 3 * * *"

func backupProcess(a Addon) string { return "addons/backup/" + a.Name }

// scheduleBackups runs `hop3 addons:backup APP NAME` on the schedule, as a
// scheduled job of the process manager: through the control socket, so a
// scheduled backup is taken, listed and pruned as one asked for by hand.
func (m *Manager) scheduleBackups(ctx context.Context, a Addon) error {
	if m.cfg.BackupSchedule == nil {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(m.logPath(a.Name)), 0o700); err != nil {
		return err
	}
	err = m.cfg.Supervisor.Start(ctx, supervisor.Spec{
		Name:     backupProcess(a),
		Labels:   map[string]string{"addon_backup": a.Name},
		Command:  []string{self, "addons:backup", a.App, a.Name},
		Dir:      m.cfg.Root,
		Env:      append([]string{"HOP3_ROOT=" + m.cfg.Root, "HOP3_CONFIG=/dev/null", "NO_COLOR=1"}, procEnv...),
		LogPath:  m.logPath(a.Name + ".backups"),
		Schedule: m.cfg.BackupSchedule,
	})
	if errors.Is(err, supervisor.ErrAlreadyStarted) {
		return nil
	}
	return err
}

func (m *Manager) unscheduleBackups(ctx context.Context, a Addon) {
	_ = m.cfg.Supervisor.Stop(ctx, backupProcess(a))
}
