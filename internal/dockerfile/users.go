package dockerfile

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// owner is a --chown value resolved to container ids.
type owner struct{ uid, gid int }

// resolveChown turns "user[:group]" (names or ids) into ids, reading
// names from the base's /etc/passwd and /etc/group as Docker does: a user
// alone takes the user's primary group when named, its own id as the
// group when numeric.
func resolveChown(spec string, base *layerFS) (owner, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" || hasGroup && groupPart == "" {
		return owner{}, fmt.Errorf("--chown=%s: expected user[:group]", spec)
	}
	var o owner
	var primary int
	if n, err := strconv.Atoi(userPart); err == nil {
		if n < 0 {
			return owner{}, fmt.Errorf("--chown=%s: negative id", spec)
		}
		o.uid, primary = n, n
	} else {
		f, err := lookupColonFile(base, "/etc/passwd", userPart, 4)
		if err != nil {
			return owner{}, fmt.Errorf("--chown=%s: unable to find user %s: %w", spec, userPart, err)
		}
		o.uid, _ = strconv.Atoi(f[2])
		primary, _ = strconv.Atoi(f[3])
	}
	o.gid = primary
	if hasGroup {
		if n, err := strconv.Atoi(groupPart); err == nil {
			if n < 0 {
				return owner{}, fmt.Errorf("--chown=%s: negative id", spec)
			}
			o.gid = n
		} else {
			f, err := lookupColonFile(base, "/etc/group", groupPart, 3)
			if err != nil {
				return owner{}, fmt.Errorf("--chown=%s: unable to find group %s: %w", spec, groupPart, err)
			}
			o.gid, _ = strconv.Atoi(f[2])
		}
	}
	return o, nil
}

// lookupColonFile finds the line of name in a passwd-style file of the
// base, with at least minFields fields.
func lookupColonFile(base *layerFS, file, name string, minFields int) ([]string, error) {
	data, err := base.readFile(file)
	if err != nil {
		return nil, fmt.Errorf("no %s in the image: %w", file, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(f) >= minFields && f[0] == name {
			if _, err := strconv.Atoi(f[2]); err == nil {
				return f, nil
			}
		}
	}
	return nil, fmt.Errorf("no matching entries in %s", file)
}
