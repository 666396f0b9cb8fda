package kubefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parse(t *testing.T, src string) *File {
	t.Helper()
	f, err := Parse("Kubefile", strings.NewReader(src))
	require.NoError(t, err)
	return f
}

func TestParseStagesAndInstructions(t *testing.T) {
	f := parse(t, `# a comment
ARG BASE=scratch
ARG VERSION
FROM --platform=linux/amd64 busybox AS build
RUN echo hi \
    && echo there
RUN ["/bin/sh", "-c", "echo exec"]
FROM ${BASE}
COPY --from=build --chmod=0755 --chown=1000:1000 /bin/busybox bin/
ADD --link files.tar.gz /opt/
ENV A=1 B="two words"
ENV LEGACY some value
LABEL sealos.io.type=rootfs sealos.io.version=v1beta1
ARG STAGE_ARG=x OTHER
WORKDIR /opt
USER 1000:1000
EXPOSE 6443/tcp 80
VOLUME ["/data"]
SHELL ["/bin/bash", "-c"]
MAINTAINER someone
STOPSIGNAL SIGTERM
ENTRYPOINT ["bash"]
CMD bash init.sh
`)
	require.Len(t, f.MetaArgs, 2)
	assert.Equal(t, "BASE", f.MetaArgs[0].Args[0].Key)
	assert.Equal(t, "scratch", *f.MetaArgs[0].Args[0].Value)
	assert.Nil(t, f.MetaArgs[1].Args[0].Value)

	require.Len(t, f.Stages, 2)
	s0, s1 := f.Stages[0], f.Stages[1]
	assert.Equal(t, "build", s0.Name)
	assert.Equal(t, "busybox", s0.Base)
	assert.Equal(t, "linux/amd64", s0.Platform)
	assert.Equal(t, 4, s0.Line)
	require.Len(t, s0.Commands, 2)
	run := s0.Commands[0].(*RunCommand)
	assert.True(t, run.PrependShell)
	assert.Equal(t, []string{"echo hi     && echo there"}, run.Args)
	assert.Equal(t, 5, run.Line)
	assert.Equal(t, 6, run.EndLine)
	exec := s0.Commands[1].(*RunCommand)
	assert.False(t, exec.PrependShell)
	assert.Equal(t, []string{"/bin/sh", "-c", "echo exec"}, exec.Args)

	assert.Equal(t, "", s1.Name)
	assert.Equal(t, "${BASE}", s1.Base)
	var instrs []string
	for _, c := range s1.Commands {
		instrs = append(instrs, c.Instruction())
	}
	assert.Equal(t, []string{"COPY", "ADD", "ENV", "ENV", "LABEL", "ARG", "WORKDIR", "USER", "EXPOSE",
		"VOLUME", "SHELL", "MAINTAINER", "STOPSIGNAL", "ENTRYPOINT", "CMD"}, instrs)

	cp := s1.Commands[0].(*CopyCommand)
	assert.Equal(t, "build", cp.From)
	assert.Equal(t, "0755", cp.Chmod)
	assert.Equal(t, "1000:1000", cp.Chown)
	assert.Equal(t, []Source{{Path: "/bin/busybox"}}, cp.Sources)
	assert.Equal(t, "bin/", cp.Dest)
	assert.Equal(t, 9, cp.Loc().Line)
	add := s1.Commands[1].(*CopyCommand)
	assert.True(t, add.Add)
	assert.True(t, add.Link)

	env := s1.Commands[2].(*EnvCommand)
	assert.Equal(t, []KeyValue{{"A", "1"}, {"B", `"two words"`}}, env.Env)
	assert.Equal(t, []KeyValue{{"LEGACY", "some value"}}, s1.Commands[3].(*EnvCommand).Env)
	assert.Equal(t, []KeyValue{{"sealos.io.type", "rootfs"}, {"sealos.io.version", "v1beta1"}}, s1.Commands[4].(*LabelCommand).Labels)
	arg := s1.Commands[5].(*ArgCommand)
	assert.Equal(t, "x", *arg.Args[0].Value)
	assert.Nil(t, arg.Args[1].Value)
	assert.Equal(t, []string{"6443/tcp", "80"}, s1.Commands[8].(*ExposeCommand).Ports)
	assert.Equal(t, []string{"/data"}, s1.Commands[9].(*VolumeCommand).Volumes)
	assert.Equal(t, []string{"/bin/bash", "-c"}, s1.Commands[10].(*ShellCommand).Shell)
	ep := s1.Commands[13].(*EntrypointCommand)
	assert.Equal(t, []string{"bash"}, ep.Args)
	assert.False(t, ep.PrependShell)
	cmd := s1.Commands[14].(*CmdCommand)
	assert.Equal(t, []string{"bash init.sh"}, cmd.Args)
	assert.True(t, cmd.PrependShell)
}

func TestParseHeredocs(t *testing.T) {
	f := parse(t, "FROM scratch\n"+
		"COPY <<EOF <<-'RAW' /etc/\n"+
		"hello $NAME\n"+
		"EOF\n"+
		"\t\tkeep $NAME\n"+
		"\tRAW\n"+
		"RUN <<EOF\n"+
		"echo one\n"+
		"echo two\n"+
		"EOF\n"+
		"CMD [\"x\"]\n")
	s := f.Stages[0]
	require.Len(t, s.Commands, 3)
	cp := s.Commands[0].(*CopyCommand)
	require.Len(t, cp.Sources, 2)
	assert.Equal(t, &Heredoc{Name: "EOF", Content: "hello $NAME\n", Expand: true}, cp.Sources[0].Heredoc)
	assert.Equal(t, &Heredoc{Name: "RAW", Content: "keep $NAME\n", Expand: false}, cp.Sources[1].Heredoc)
	assert.Equal(t, "/etc/", cp.Dest)
	assert.Equal(t, 2, cp.Line)
	assert.Equal(t, 6, cp.EndLine)
	run := s.Commands[1].(*RunCommand)
	assert.Equal(t, []string{"<<EOF"}, run.Args)
	require.Len(t, run.Heredocs, 1)
	assert.Equal(t, "echo one\necho two\n", run.Heredocs[0].Content)
	assert.Equal(t, 11, s.Commands[2].Loc().Line)

	// The escape directive changes the continuation character.
	f = parse(t, "# escape=`\nFROM scratch\nENV A=1 `\n  B=2\nCOPY a b\n")
	assert.Equal(t, '`', f.EscapeToken)
	assert.Equal(t, []KeyValue{{"A", "1"}, {"B", "2"}}, f.Stages[0].Commands[0].(*EnvCommand).Env)
	assert.Equal(t, 5, f.Stages[0].Commands[1].Loc().Line)
}

// TestBrokenKubefiles is the table of broken Kubefiles and the exact message each gives.
func TestBrokenKubefiles(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"empty file", "", `Kubefile: the file has no instructions: a Kubefile needs at least a FROM line`},
		{"only comments", "# nothing\n\n", `Kubefile: the file has no instructions: a Kubefile needs at least a FROM line`},
		{"only args", "ARG A=1\n", `Kubefile: no FROM instruction: every Kubefile starts a stage with FROM (FROM scratch for an empty one)`},
		{"instruction before FROM", "COPY a b\nFROM scratch\n", `Kubefile:1: COPY: comes before the first FROM: only ARG may come before FROM`},
		{"unknown instruction", "FROM scratch\n\nCOPPY a b\n", `Kubefile:3: unknown instruction "COPPY" (did you mean COPY?)`},
		{"unknown lower case", "FROM scratch\nentrypont [\"a\"]\n", `Kubefile:2: unknown instruction "entrypont" (did you mean ENTRYPOINT?)`},
		{"unknown far", "FROM scratch\nFROBNICATE x\n", `Kubefile:2: unknown instruction "FROBNICATE" (a Kubefile takes Dockerfile instructions: FROM, ARG, ENV, LABEL, COPY, ADD, RUN, WORKDIR, CMD, ENTRYPOINT, ...; see Kubefile.md)`},
		{"sealer's", "FROM scratch\nCMDS kubectl apply -f x\n", `Kubefile:2: CMDS is sealer's Kubefile instruction, not a sealos one: COPY the files into the image and run them with CMD (see Kubefile.md)`},
		{"unknown after continuation", "FROM scratch\nRUN echo a \\\n  b\nLABLE a=b\n", `Kubefile:4: unknown instruction "LABLE" (did you mean LABEL?)`},
		{"copy one arg", "FROM scratch\nLABEL a=b\n\n\n\n\nCOPY onlyone\n", `Kubefile:7: COPY: requires at least two arguments: COPY <src>... <dest>`},
		{"add no args", "FROM scratch\nADD\n", `Kubefile:2: ADD: requires at least two arguments: ADD <src>... <dest>`},
		{"copy unknown flag", "FROM scratch\nCOPY --form=a x y\n", `Kubefile:2: COPY: unknown flag --form (COPY accepts --chmod, --chown, --exclude, --from, --link)`},
		{"add from flag", "FROM scratch\nADD --from=a x y\n", `Kubefile:2: ADD: unknown flag --from (ADD accepts --checksum, --chmod, --chown, --exclude, --link)`},
		{"copy flag without value", "FROM scratch\nCOPY --from x y\n", `Kubefile:2: COPY: flag --from needs a value, e.g. --from=builder`},
		{"copy flag twice", "FROM scratch\nCOPY --chmod=1 --chmod=2 x y\n", `Kubefile:2: COPY: flag --chmod is given twice`},
		{"bad bool", "FROM scratch\nCOPY --link=maybe x y\n", `Kubefile:2: COPY: flag --link takes true or false, not "maybe"`},
		{"heredoc dest", "FROM scratch\nCOPY a <<EOF\nx\nEOF\n", `Kubefile:2: COPY: the destination cannot be a heredoc`},
		{"unterminated heredoc", "FROM scratch\nRUN <<EOF\necho\n", `Kubefile:2: RUN: heredoc is not terminated: end it with a line holding only its terminator word`},
		{"from without image", "FROM\n", `Kubefile:1: FROM: requires an image: FROM <image> [AS <name>] (FROM scratch for an empty base)`},
		{"from garbage", "FROM a b c d\n", `Kubefile:1: FROM: expected FROM <image> [AS <name>], got "a b c d"`},
		{"from bad name", "FROM a AS 1x\n", `Kubefile:1: FROM: invalid stage name "1x": use lower-case letters, digits, '-', '_' and '.', starting with a letter`},
		{"duplicate stage", "FROM a AS x\nFROM b AS X\n", `Kubefile:2: FROM: duplicate stage name "x" (first used at Kubefile:1)`},
		{"from bad flag", "FROM --plattform=x a\n", `Kubefile:1: FROM: unknown flag --plattform (FROM accepts --platform)`},
		{"env no value legacy", "FROM scratch\nENV ONLY\n", `Kubefile:2: ENV: must have two arguments`},
		{"env missing equals", "FROM scratch\nENV A=1 B\n", `Kubefile:2: ENV: Syntax error - can't find = in "B". Must be of the form: name=value`},
		{"env empty", "FROM scratch\nENV\n", `Kubefile:2: ENV: requires at least one NAME=value`},
		{"label empty", "FROM scratch\nLABEL\n", `Kubefile:2: LABEL: requires at least one key=value`},
		{"arg empty", "FROM scratch\nARG\n", `Kubefile:2: ARG: requires a name, e.g. ARG VERSION or ARG VERSION=v1.0`},
		{"arg no name", "FROM scratch\nARG =x\n", `Kubefile:2: ARG: missing name in "=x": use ARG NAME[=default]`},
		{"workdir none", "FROM scratch\nWORKDIR\n", `Kubefile:2: WORKDIR: requires exactly one argument: a directory, e.g. WORKDIR /opt/app`},
		{"user none", "FROM scratch\nUSER\n", `Kubefile:2: USER: requires exactly one argument: a user, e.g. USER 1000:1000`},
		{"cmd none", "FROM scratch\nCMD\n", `Kubefile:2: CMD: requires a command, e.g. CMD ["bash", "init.sh"] (CMD [] clears it)`},
		{"cmd not strings", "FROM scratch\nCMD [\"a\", 1]\n", `Kubefile:2: CMD: when using JSON array syntax, arrays must be comprised of strings only`},
		{"run none", "FROM scratch\nRUN\n", `Kubefile:2: RUN: requires a command, e.g. RUN echo hi or RUN ["echo", "hi"]`},
		{"run mount", "FROM scratch\nRUN --mount=type=cache,target=/x echo\n", `Kubefile:2: RUN: unknown flag --mount (RUN accepts --network)`},
		{"run bad network", "FROM scratch\nRUN --network=bridge echo\n", `Kubefile:2: RUN: unknown network "bridge": use default, none or host`},
		{"shell not json", "FROM scratch\nSHELL /bin/bash -c\n", `Kubefile:2: SHELL: requires a JSON array, e.g. SHELL ["/bin/bash", "-c"]`},
		{"expose none", "FROM scratch\nEXPOSE\n", `Kubefile:2: EXPOSE: requires at least one port, e.g. EXPOSE 6443/tcp`},
		{"workdir flag", "FROM scratch\nWORKDIR --x=1 /a\n", `Kubefile:2: WORKDIR: unknown flag --x (WORKDIR takes no flags)`},
		{"onbuild", "FROM scratch\nONBUILD RUN x\n", `Kubefile:2: ONBUILD is not supported in a Kubefile: write those instructions in the Kubefile that builds FROM this image`},
		{"healthcheck", "FROM scratch\nHEALTHCHECK NONE\n", `Kubefile:2: HEALTHCHECK is not supported in a Kubefile: cluster images are not run as containers`},
		{"bad escape", "# escape=x\nFROM scratch\n", `Kubefile:1: invalid escape token 'x' does not match ` + "`" + ` or \`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("Kubefile", strings.NewReader(c.src))
			require.Error(t, err)
			assert.Equal(t, c.want, err.Error())
			var ke *Error
			assert.True(t, errors.As(err, &ke), "want *kubefile.Error, got %T", err)
		})
	}
}

func TestExpand(t *testing.T) {
	f := parse(t, `ARG BASE=busy
ARG TAG=${BASE}box
ARG UNSET
FROM ${TAG}:${VERSION:-latest} AS app
ENV DIR=/opt/$NAME Q="a b"
COPY --chown=${UID}:0 <<EOF $SRC ${DIR}/x
name=$NAME '$NAME'
EOF
WORKDIR ${DIR}
EXPOSE ${PORTS}
RUN echo $NAME
`)
	meta, err := f.ResolveMetaArgs(map[string]string{"VERSION": "ignored: not declared"}, map[string]string{"TARGETARCH": "amd64"})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"BASE": "busy", "TAG": "busybox", "TARGETARCH": "amd64"}, meta)
	base, plat, err := f.BaseOf(f.Stages[0], meta)
	require.NoError(t, err)
	assert.Equal(t, "busybox:latest", base)
	assert.Equal(t, "", plat)

	meta, err = f.ResolveMetaArgs(map[string]string{"BASE": "alp", "TAG": "alpine"}, nil)
	require.NoError(t, err)
	assert.Equal(t, "alpine", meta["TAG"])

	e := f.NewExpander()
	env := []string{"NAME=app", "SRC=files/", "UID=1000", "DIR=/srv", "PORTS=80 443"}
	cmds := f.Stages[0].Commands
	got, err := e.Expand(cmds[0], env)
	require.NoError(t, err)
	assert.Equal(t, []KeyValue{{"DIR", "/opt/app"}, {"Q", "a b"}}, got.(*EnvCommand).Env)
	assert.Equal(t, `"a b"`, cmds[0].(*EnvCommand).Env[1].Value, "the AST is not changed")

	got, err = e.Expand(cmds[1], env)
	require.NoError(t, err)
	cp := got.(*CopyCommand)
	assert.Equal(t, "1000:0", cp.Chown)
	assert.Equal(t, "name=app 'app'\n", cp.Sources[0].Heredoc.Content)
	assert.Equal(t, "files/", cp.Sources[1].Path)
	assert.Equal(t, "/srv/x", cp.Dest)

	got, err = e.Expand(cmds[2], env)
	require.NoError(t, err)
	assert.Equal(t, "/srv", got.(*WorkdirCommand).Path)
	got, err = e.Expand(cmds[3], env)
	require.NoError(t, err)
	assert.Equal(t, []string{"80", "443"}, got.(*ExposeCommand).Ports)
	got, err = e.Expand(cmds[4], env)
	require.NoError(t, err)
	assert.Equal(t, []string{"echo $NAME"}, got.(*RunCommand).Args, "RUN is left to the shell")

	bad := parse(t, "FROM scratch\nWORKDIR ${X:?must be set}\n")
	_, err = e.Expand(bad.Stages[0].Commands[0], nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Kubefile:2: WORKDIR: ")
	assert.Contains(t, err.Error(), "must be set")

	empty := parse(t, "ARG B\nFROM $B\n")
	_, _, err = empty.BaseOf(empty.Stages[0], map[string]string{})
	assert.EqualError(t, err, `Kubefile:2: FROM: image "$B" expands to an empty name: set it with --build-arg or give the ARG a default`)
}

func TestTarget(t *testing.T) {
	f := parse(t, "FROM a AS one\nFROM b AS two\nFROM c\n")
	s, err := f.Target("")
	require.NoError(t, err)
	assert.Equal(t, 2, s.Index)
	s, err = f.Target("TWO")
	require.NoError(t, err)
	assert.Equal(t, "two", s.Name)
	_, err = f.Target("three")
	assert.EqualError(t, err, `Kubefile: target stage "three" not found: stages are one, two`)
	assert.Equal(t, f.Stages[0], f.StageByName("0", 1))
	assert.Nil(t, f.StageByName("two", 1), "a stage can only name stages before it")
}

func TestFindKubefile(t *testing.T) {
	dir := t.TempDir()
	_, err := FindKubefile(dir)
	assert.EqualError(t, err, "no Kubefile, Sealfile, Dockerfile or Containerfile in "+dir+": add one or name it with -f")
	for _, n := range []string{"Dockerfile", "Sealfile", "Kubefile"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte("FROM scratch\n"), 0o644))
		p, err := FindKubefile(dir)
		require.NoError(t, err)
		assert.Equal(t, filepath.Join(dir, n), p, "the newest written name wins by order")
	}
	f, err := ParseFile(filepath.Join(dir, "Kubefile"))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "Kubefile"), f.Name)
}
