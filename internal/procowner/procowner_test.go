package procowner

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDead(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Fatalf("tags are read from /proc: %v", err)
	}
	self := Tag()
	require.NotEmpty(t, self)
	dead, ok := Dead(self)
	assert.True(t, ok)
	assert.False(t, dead, "this process")

	cmd := exec.Command("true")
	require.NoError(t, cmd.Start())
	start, alive := ProcStart(cmd.Process.Pid)
	require.True(t, alive)
	gone := fmt.Sprintf("%d_%d_%s", cmd.Process.Pid, start, BootID()[:8])
	require.NoError(t, cmd.Wait())
	dead, ok = Dead(gone)
	assert.True(t, ok)
	assert.True(t, dead, "an exited process")

	pid, startNow := os.Getpid(), uint64(0)
	startNow, _ = ProcStart(pid)
	dead, _ = Dead(fmt.Sprintf("%d_%d_%s", pid, startNow+1, BootID()[:8]))
	assert.True(t, dead, "the same pid, started at another time: reused")
	dead, _ = Dead(fmt.Sprintf("%d_%d_%s", pid, startNow, "00000000"))
	assert.True(t, dead, "an earlier boot")
	_, ok = Dead("not-a-tag")
	assert.False(t, ok)
}
