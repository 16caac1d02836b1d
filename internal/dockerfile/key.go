package dockerfile

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
)

// keyVersion changes when the meaning of keys changes, so old cache
// entries are never taken for new ones.
const keyVersion = "cc-build-step-v1"

// hasher accumulates the parts of a key, each length-prefixed so that
// no two sequences of parts hash alike.
type hasher struct {
	h    hash.Hash
	also *hasher // takes every part added from now on too, when set
}

func newHasher(kind string) *hasher {
	k := &hasher{h: sha256.New()}
	k.add(keyVersion)
	k.add(kind)
	return k
}

func (k *hasher) add(parts ...string) *hasher {
	for _, p := range parts {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		k.h.Write(n[:])
		k.h.Write([]byte(p))
	}
	if k.also != nil {
		k.also.add(parts...)
	}
	return k
}

func (k *hasher) addBytes(b []byte) *hasher {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	k.h.Write(n[:])
	k.h.Write(b)
	if k.also != nil {
		k.also.addBytes(b)
	}
	return k
}

func (k *hasher) sum() string { return hex.EncodeToString(k.h.Sum(nil)) }

// stepKey derives a step's key from the previous key and the parts that
// describe the step.
func stepKey(prev, kind string, parts ...string) string {
	return newHasher(kind).add(prev).add(parts...).sum()
}
