package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cluster-image/sealos/registry/server"
)

func init() { addRegistryCommand(newRegistryPasswdCmd) }

func newRegistryPasswdCmd() *cobra.Command {
	var (
		file          string
		passwordStdin bool
		remove        bool
	)
	cmd := &cobra.Command{
		Use:   "passwd USER",
		Short: "Add a user to an htpasswd file, or change their password (bcrypt)",
		Long: `passwd adds USER to the htpasswd file given by --htpasswd (created if missing) or
changes their password; --delete removes them. The hash is bcrypt, the only kind the hub
accepts. A running 'sealos registry serve --htpasswd FILE' picks the change up at once.

The password is read from the terminal (twice), or from stdin with --password-stdin.`,
		Example: `  sealos registry passwd --htpasswd /etc/registry/htpasswd admin
  echo "$PASSWORD" | sealos registry passwd --htpasswd ./htpasswd admin --password-stdin
  sealos registry passwd --htpasswd ./htpasswd olduser --delete`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return errors.New("--htpasswd FILE is required")
			}
			user := args[0]
			if remove {
				if err := server.RemoveHtpasswdUser(file, user); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "removed %s from %s\n", user, file)
				return nil
			}
			pass, err := readNewPassword(cmd, passwordStdin)
			if err != nil {
				return err
			}
			if err := server.SetHtpasswdUser(file, user, pass); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "set password of %s in %s\n", user, file)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "htpasswd", "", "htpasswd file to edit (required)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin (first line)")
	cmd.Flags().BoolVar(&remove, "delete", false, "remove the user instead")
	return cmd
}

func readNewPassword(cmd *cobra.Command, fromStdin bool) (string, error) {
	in := cmd.InOrStdin()
	if fromStdin {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password: %w", err)
		}
		pass := strings.TrimRight(line, "\r\n")
		if pass == "" {
			return "", errors.New("empty password on stdin")
		}
		return pass, nil
	}
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("stdin is not a terminal: use --password-stdin")
	}
	fmt.Fprint(cmd.ErrOrStderr(), "New password: ")
	p1, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	fmt.Fprint(cmd.ErrOrStderr(), "Repeat password: ")
	p2, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if string(p1) != string(p2) {
		return "", errors.New("passwords do not match")
	}
	if len(p1) == 0 {
		return "", errors.New("empty password")
	}
	return string(p1), nil
}
