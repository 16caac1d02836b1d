package ipc

import (
	"os"
	"runtime"
	"strings"
	"sync"
)

// useHelper caches the decision of UseHelper.
var useHelper struct {
	sync.Mutex
	decided bool // guarded by Mutex
	value   bool // guarded by Mutex
}

// UseHelper returns true if the IPC helper should be used for instance operations.
// By default:
//   - macOS: true (codesigning required for hypervisor access)
//   - Windows: true (Go c-archive crashes with hypervisor APIs in-process)
//   - Other platforms: false (library can access hypervisor directly)
//
// The environment variable CC_USE_HELPER overrides the default: 1, true, yes
// or on force the helper; 0, false, no or off force direct execution (any
// case). Other values are ignored. The answer is computed once and cached;
// see [ResetUseHelper].
func UseHelper() bool {
	useHelper.Lock()
	defer useHelper.Unlock()
	if !useHelper.decided {
		useHelper.value = decideUseHelper(os.Getenv("CC_USE_HELPER"), runtime.GOOS)
		useHelper.decided = true
	}
	return useHelper.value
}

// decideUseHelper is UseHelper's rule for an environment value and a GOOS.
func decideUseHelper(env, goos string) bool {
	switch strings.ToLower(strings.TrimSpace(env)) {
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	}
	return goos == "darwin" || goos == "windows"
}

// ResetUseHelper resets the cached UseHelper value. This is only for testing.
func ResetUseHelper() {
	useHelper.Lock()
	defer useHelper.Unlock()
	useHelper.decided = false
}
