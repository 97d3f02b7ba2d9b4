package layout

import "testing"

// TestLayout pins every path under the root: a change here moves files
// an existing root already holds.
func TestLayout(t *testing.T) {
	l := New("/r")
	for _, tc := range []struct{ got, want string }{
		{l.Root(), "/r"},
		{l.DB(), "/r/hop3.db"},
		{l.SSH(), "/r/ssh"},
		{l.HostKey(), "/r/ssh/host_ed25519"},
		{l.Control(), "/r/control.sock"},
		{l.ControlStaging(), "/r/ssh/control.sock.new"},
		{l.ReposDir(), "/r/repos"},
		{l.Repo("a"), "/r/repos/a.git"},
		{l.AppsDir(), "/r/apps"},
		{l.AppDir("a"), "/r/apps/a"},
		{l.Releases("a"), "/r/apps/a/releases"},
		{l.Release("a", 3), "/r/apps/a/releases/3"},
		{l.Envs("a"), "/r/apps/a/envs"},
		{l.BuildLog("a", 4), "/r/apps/a/builds/4.log"},
		{l.LegacyBuildLog("a", 3), "/r/apps/a/releases/3.build.log"},
		{l.Manifest("a", 3), "/r/apps/a/releases/3.files"},
		{l.Current("a"), "/r/apps/a/current"},
		{l.DataDir(), "/r/data"},
		{l.Data("a"), "/r/data/a"},
		{l.LogsDir(), "/r/logs"},
		{l.Logs("a"), "/r/logs/a"},
		{l.ProcessLog("a", "web", 2), "/r/logs/a/web.2.log"},
		{l.AddonLog("addons-redis-x"), "/r/logs/addons/addons-redis-x.log"},
		{l.RunDir(), "/r/run"},
		{l.Run("a"), "/r/run/a"},
		{l.WebSocket("a"), "/r/run/a/web.sock"},
		{l.StaticSocket("a"), "/r/run/a/static.sock"},
		{l.PIDs(), "/r/run/pids"},
		{l.IsolationState(), "/r/run/isolation"},
		{l.TmpDir(), "/r/tmp"},
		{l.Tmp("a"), "/r/tmp/a"},
		{l.SharedObjects(), "/r/cache/shared-objects"},
		{l.Cache(), "/r/cache"},
		{l.Caddy(), "/r/caddy"},
		{l.Admin(), "/r/admin"},
		{l.HeldAdminSocket(), "/r/admin/caddy.sock"},
		{l.GitHooks(), "/r/git/hooks"},
		{l.PushGates(), "/r/git/pushes"},
		{l.Addons(), "/r/addons"},
		{l.Backups("a"), "/r/backups/a"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}
