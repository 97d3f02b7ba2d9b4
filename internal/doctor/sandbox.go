package doctor

import "fmt"

// sandbox reports which of the protections between apps Landlock adds:
// with it, an app's processes reach only their own release, environment,
// DATA_DIR and TMPDIR; without it, only file ownership (one uid per app)
// keeps apps apart. Neither is a failure: hop3 runs apps either way.
func (c *checker) sandbox() Result {
	const name = "sandbox"
	if c.cfg.Sandbox == "off" {
		return warn(name, "Landlock off (--sandbox off): app processes' file access is not confined; uid separation alone holds",
			"unset HOP3_SANDBOX or set it to auto")
	}
	abi := 0
	if c.sys.LandlockABI != nil {
		abi = c.sys.LandlockABI()
	}
	if abi == 0 {
		return warn(name, "Landlock missing: uid separation alone holds",
			"run Linux 5.13 or newer with Landlock enabled (CONFIG_SECURITY_LANDLOCK, lsm=...,landlock on the kernel command line)")
	}
	return ok(name, fmt.Sprintf("Landlock ABI %d: app processes reach only their release, environments, DATA_DIR and TMPDIR", abi))
}
