package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupLimits are the limits a launch asks of its cgroup.
type cgroupLimits struct {
	Memory int64   // bytes
	CPU    float64 // CPUs
	Pids   int
}

// cgroupMounts says where the cgroup hierarchies are, read from mountinfo.
type cgroupMounts struct {
	V2          string            // the cgroup2 mount with the controllers Warden needs, if any
	V2Ctrls     []string          // controllers available at V2
	V1          map[string]string // v1 controller -> mount point
	V2Available bool
}

// findCgroups reads a mountinfo file (normally /proc/self/mountinfo).
func findCgroups(mountinfo string) (cgroupMounts, error) {
	m := cgroupMounts{V1: map[string]string{}}
	f, err := os.Open(mountinfo)
	if err != nil {
		return m, fmt.Errorf("reading mount table: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, sf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(sf) < 3 {
			continue
		}
		mnt := unescapeMount(pf[4])
		switch sf[0] {
		case "cgroup2":
			b, err := os.ReadFile(filepath.Join(mnt, "cgroup.controllers"))
			if err != nil {
				continue
			}
			ctrls := strings.Fields(string(b))
			if hasAll(ctrls, "memory", "pids") && (m.V2 == "" || len(ctrls) > len(m.V2Ctrls)) {
				m.V2, m.V2Ctrls, m.V2Available = mnt, ctrls, true
			}
		case "cgroup":
			for _, opt := range strings.Split(sf[2], ",") {
				switch opt {
				case "memory", "pids", "cpu":
					if _, seen := m.V1[opt]; !seen {
						m.V1[opt] = mnt
					}
				}
			}
		}
	}
	return m, sc.Err()
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

func hasAll(list []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, l := range list {
			if l == w {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// cgroup is one launch's cgroup, in v2 or in the v1 hierarchies.
type cgroup struct {
	version int
	dirs    map[string]string // controller ("" for v2) -> directory
	fd      *os.File          // v2: the directory, for CLONE_INTO_CGROUP
	cpu     bool              // v2: the cpu controller is available
	applied map[string]string // mechanism -> detail
}

// newCgroup creates a launch's cgroup (limits are written by setLimits).
// It needs root; v2 is used where it has the memory and pids controllers,
// v1 otherwise.
func newCgroup(m cgroupMounts, id string) (*cgroup, error) {
	if m.V2Available {
		return newCgroupV2(m.V2, m.V2Ctrls, id)
	}
	if len(m.V1) == 0 {
		return nil, errors.New("no cgroup hierarchy with the memory or pids controller is mounted")
	}
	return newCgroupV1(m.V1, id)
}

func newCgroupV2(mnt string, ctrls []string, id string) (*cgroup, error) {
	parent := filepath.Join(mnt, "warden")
	if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("creating cgroup %s: %w", parent, err)
	}
	enable := "+memory +pids"
	if hasAll(ctrls, "cpu") {
		enable += " +cpu"
	}
	for _, d := range []string{mnt, parent} {
		if err := os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte(enable), 0); err != nil {
			return nil, fmt.Errorf("enabling cgroup controllers in %s: %w", d, err)
		}
	}
	dir := filepath.Join(parent, id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating cgroup %s: %w", dir, err)
	}
	cg := &cgroup{version: 2, dirs: map[string]string{"": dir}, applied: map[string]string{}, cpu: hasAll(ctrls, "cpu")}
	fd, err := os.Open(dir)
	if err != nil {
		cg.remove()
		return nil, fmt.Errorf("opening cgroup %s: %w", dir, err)
	}
	cg.fd = fd
	return cg, nil
}

func newCgroupV1(mounts map[string]string, id string) (*cgroup, error) {
	cg := &cgroup{version: 1, dirs: map[string]string{}, applied: map[string]string{}}
	for _, ctrl := range []string{"memory", "pids", "cpu"} {
		mnt, ok := mounts[ctrl]
		if !ok {
			continue
		}
		dir := filepath.Join(mnt, "warden", id)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			cg.remove()
			return nil, fmt.Errorf("creating cgroup %s: %w", dir, err)
		}
		cg.dirs[ctrl] = dir
	}
	if len(cg.dirs) == 0 {
		return nil, errors.New("no cgroup v1 hierarchy with memory, pids or cpu is mounted")
	}
	return cg, nil
}

// staleCgroupAge is how old an empty sandbox cgroup must be before a new
// launcher removes it. A launch moves its process into its cgroup within
// milliseconds of creating it, and a running sandbox (a spare init
// included) is never empty, so an empty one this old belongs to a Warden
// process that ended without removing it (killed, or crashed).
const staleCgroupAge = time.Minute

// sweepCgroups removes the sandbox cgroups that earlier processes left
// behind: empty and older than minAge. The kernel refuses to remove a
// cgroup that still holds a process, so a live sandbox is never touched.
// It reports how many directories it removed.
func sweepCgroups(m cgroupMounts, minAge time.Duration, now time.Time) int {
	var parents []string
	if m.V2Available {
		parents = append(parents, filepath.Join(m.V2, "warden"))
	} else {
		for _, mnt := range m.V1 {
			parents = append(parents, filepath.Join(mnt, "warden"))
		}
	}
	removed := 0
	for _, parent := range parents {
		entries, err := os.ReadDir(parent)
		if err != nil {
			continue // no sandbox ever ran under this hierarchy
		}
		for _, e := range entries {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), "sandbox-") {
				continue
			}
			fi, err := e.Info()
			if err != nil || now.Sub(fi.ModTime()) < minAge {
				continue
			}
			if unix.Rmdir(filepath.Join(parent, e.Name())) == nil {
				removed++
			}
		}
	}
	return removed
}

// setLimits writes the launch's limits; applied records what took.
func (cg *cgroup) setLimits(l cgroupLimits) error {
	if cg.version == 2 {
		dir := cg.dirs[""]
		if err := cgWrite(dir, "memory.max", strconv.FormatInt(l.Memory, 10)); err != nil {
			return err
		}
		_ = cgWrite(dir, "memory.swap.max", "0") // absent without swap accounting
		cg.applied[MechMemoryLimit] = "cgroup v2"
		if err := cgWrite(dir, "pids.max", strconv.Itoa(l.Pids)); err != nil {
			return err
		}
		cg.applied[MechPidsLimit] = "cgroup v2"
		if cg.cpu && l.CPU > 0 {
			if err := cgWrite(dir, "cpu.max", fmt.Sprintf("%d 100000", int64(l.CPU*100000))); err != nil {
				return err
			}
			cg.applied[MechCPULimit] = "cgroup v2"
		}
		return nil
	}
	if dir, ok := cg.dirs["memory"]; ok {
		if err := cgWrite(dir, "memory.limit_in_bytes", strconv.FormatInt(l.Memory, 10)); err != nil {
			return err
		}
		// Swap must not extend the limit; the file exists only with swap
		// accounting.
		_ = cgWrite(dir, "memory.memsw.limit_in_bytes", strconv.FormatInt(l.Memory, 10))
		cg.applied[MechMemoryLimit] = "cgroup v1"
	}
	if dir, ok := cg.dirs["pids"]; ok {
		if err := cgWrite(dir, "pids.max", strconv.Itoa(l.Pids)); err != nil {
			return err
		}
		cg.applied[MechPidsLimit] = "cgroup v1"
	}
	if dir, ok := cg.dirs["cpu"]; ok && l.CPU > 0 {
		if err := cgWrite(dir, "cpu.cfs_period_us", "100000"); err != nil {
			return err
		}
		if err := cgWrite(dir, "cpu.cfs_quota_us", strconv.FormatInt(int64(l.CPU*100000), 10)); err != nil {
			return err
		}
		cg.applied[MechCPULimit] = "cgroup v1"
	}
	return nil
}

func cgWrite(dir, file, value string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0); err != nil {
		return fmt.Errorf("writing cgroup %s: %w", file, err)
	}
	return nil
}

// addProc moves pid into every v1 hierarchy of the cgroup (v2 launches are
// placed at clone time instead).
func (cg *cgroup) addProc(pid int) error {
	if cg.version != 1 {
		return nil
	}
	for _, dir := range cg.dirs {
		if err := cgWrite(dir, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// oomKilled reports whether the kernel killed a process of the cgroup for
// exceeding its memory limit.
func (cg *cgroup) oomKilled() bool {
	if cg == nil {
		return false
	}
	var file, key string
	var dir string
	if cg.version == 2 {
		dir, file, key = cg.dirs[""], "memory.events", "oom_kill"
	} else {
		dir, file, key = cg.dirs["memory"], "memory.oom_control", "oom_kill"
	}
	if dir == "" {
		return false
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n > 0
		}
	}
	return false
}

// kill sends SIGKILL to every process in the cgroup.
func (cg *cgroup) kill() {
	if cg == nil {
		return
	}
	if cg.version == 2 {
		if cgWrite(cg.dirs[""], "cgroup.kill", "1") == nil {
			return
		}
	}
	for _, dir := range cg.dirs {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
	}
}

// remove deletes the cgroup once its processes are gone.
func (cg *cgroup) remove() {
	if cg == nil {
		return
	}
	if cg.fd != nil {
		cg.fd.Close()
	}
	for _, dir := range cg.dirs {
		for i := 0; i < 50; i++ {
			if err := unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
