package idmap

import "syscall"

// SysProcIDMaps returns rs in the form syscall.SysProcAttr's UidMappings
// and GidMappings take.
func SysProcIDMaps(rs []Range) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(rs))
	for i, r := range rs {
		out[i] = syscall.SysProcIDMap{ContainerID: int(r.ContainerID), HostID: int(r.HostID), Size: int(r.Size)}
	}
	return out
}
