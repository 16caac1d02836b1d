package ipc

// The seed document's message numbers that nothing in this SDK sends or
// serves. They keep their values, so that no extension ever takes them, and
// a server answers them as unknown messages.
const (
	MsgInstanceSetConsole uint16 = 0x0105
	MsgInstanceExec       uint16 = 0x0107

	MsgCmdEntrypoint     uint16 = 0x0401
	MsgCmdSetDir         uint16 = 0x0403
	MsgCmdSetEnv         uint16 = 0x0404
	MsgCmdGetEnv         uint16 = 0x0405
	MsgCmdEnviron        uint16 = 0x0406
	MsgCmdOutput         uint16 = 0x040A
	MsgCmdCombinedOutput uint16 = 0x040B
	MsgCmdExitCode       uint16 = 0x040C

	MsgConnRead       uint16 = 0x0504
	MsgConnWrite      uint16 = 0x0505
	MsgConnClose      uint16 = 0x0506
	MsgConnLocalAddr  uint16 = 0x0507
	MsgConnRemoteAddr uint16 = 0x0508

	MsgSnapshotCacheKey uint16 = 0x0600
	MsgSnapshotParent   uint16 = 0x0601
	MsgSnapshotClose    uint16 = 0x0602
	MsgSnapshotAsSource uint16 = 0x0603

	MsgBuildDockerfile uint16 = 0x0700
)
