package kubefile

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse proves Parse never panics and that every failure is an *Error naming the file;
// files that parse are also expanded, which must not panic either.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"FROM scratch\nCOPY . .\nCMD [\"bash\", \"init.sh\"]\n",
		"ARG BASE=scratch\nFROM ${BASE} AS a\nRUN echo hi \\\n && echo there\nFROM a\nCOPY --from=a --chmod=755 /x /y\n",
		"FROM scratch\nCOPY <<EOF <<-'RAW' /etc/\nhello $NAME\nEOF\n\tRAW\n\tRAW\n",
		"# escape=`\nFROM scratch\nENV A=1 `\n B=\"2 3\"\nLABEL sealos.io.type=rootfs\n",
		"FROM scratch\nRUN <<EOF\necho\nEOF\nENTRYPOINT echo\nWORKDIR /x\nUSER 0\nEXPOSE 1 2\nVOLUME [\"/v\"]\nSHELL [\"sh\",\"-c\"]\n",
		"FROM --platform=$BUILDPLATFORM a AS b\nADD --link --checksum=sha256:0 http://x/y /z\nARG A B=c\nSTOPSIGNAL 9\nMAINTAINER me\n",
		"COPPY a b\n", "FROM\n", "FROM scratch\nENV\n", "FROM scratch\nCMD [1]\n", "\ufeffFROM scratch\n",
		"FROM scratch\nWORKDIR ${X:?unset}\nEXPOSE ${P:-80}\nCOPY $A${B} ${C:+d}\n",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		file, err := Parse("Kubefile", strings.NewReader(src))
		if err != nil {
			var ke *Error
			if !errors.As(err, &ke) {
				t.Fatalf("error is %T, not *kubefile.Error: %v", err, err)
			}
			if !strings.HasPrefix(err.Error(), "Kubefile") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if len(file.Stages) == 0 {
			t.Fatal("parsed without a stage")
		}
		meta, err := file.ResolveMetaArgs(map[string]string{"A": "1"}, nil)
		if err != nil {
			return
		}
		e := file.NewExpander()
		env := []string{"NAME=x", "A=$B", "B=\"q\""}
		for _, s := range file.Stages {
			_, _, _ = file.BaseOf(s, meta)
			for _, c := range s.Commands {
				if c.Loc().Line < 1 {
					t.Fatalf("%s has no line", c.Instruction())
				}
				_, _ = e.Expand(c, env)
			}
		}
	})
}
