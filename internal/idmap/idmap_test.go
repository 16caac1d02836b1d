package idmap

import "testing"

func TestRootMap(t *testing.T) {
	m := Map{UIDs: []Range{{0, RootBase, RootSize}}, GIDs: []Range{{0, RootBase, RootSize}}}
	if m.Single() {
		t.Fatal("a 65536-id map reported Single")
	}
	for _, id := range []uint32{0, 1000, 65535} {
		h, ok := m.HostUID(id)
		if !ok || h != RootBase+id {
			t.Errorf("HostUID(%d) = %d, %v", id, h, ok)
		}
		c, ok := m.ContainerUID(h)
		if !ok || c != id {
			t.Errorf("ContainerUID(%d) = %d, %v", h, c, ok)
		}
	}
	if _, ok := m.HostGID(65536); ok {
		t.Error("id 65536 mapped")
	}
	if _, ok := m.ContainerUID(0); ok {
		t.Error("host root mapped into the sandbox")
	}
}

func TestSingleMap(t *testing.T) {
	m := Map{UIDs: []Range{{0, 1234, 1}}, GIDs: []Range{{0, 99, 1}}}
	if !m.Single() {
		t.Fatal("one-id map not Single")
	}
	if h, ok := m.HostUID(0); !ok || h != 1234 {
		t.Errorf("HostUID(0) = %d %v", h, ok)
	}
	if _, ok := m.HostUID(1); ok {
		t.Error("uid 1 mapped in a one-id map")
	}
	if c, ok := m.ContainerGID(99); !ok || c != 0 {
		t.Errorf("ContainerGID(99) = %d %v", c, ok)
	}
}
