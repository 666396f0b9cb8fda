package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cluster-image/sealos/registry/client"
)

func newLoginCmd() *cobra.Command {
	var (
		username, password string
		passwordStdin      bool
		tlsVerify          bool
	)
	cmd := &cobra.Command{
		Use:   "login REGISTRY",
		Short: "Log in to a registry and store the credentials",
		Long: `login checks a username and password against REGISTRY (host[:port]) and stores them the way
docker login does: in the credential helper named by credsStore/credHelpers in the docker
config.json, or in config.json itself. The config is $DOCKER_CONFIG/config.json or
~/.docker/config.json, so docker, podman, crane and sealos share logins.

Prefer --password-stdin over --password: a password on the command line ends up in the
shell history and the process list.`,
		Example: `  sealos login -u admin registry.example.com
  echo "$PASSWORD" | sealos login -u admin --password-stdin localhost:5000
  sealos login --tls-verify=false -u admin -p secret 10.0.0.2:5000`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := cmd.InOrStdin()
			if passwordStdin {
				if password != "" {
					return fmt.Errorf("--password and --password-stdin are mutually exclusive")
				}
				if username == "" {
					return fmt.Errorf("--password-stdin needs --username")
				}
				b, err := io.ReadAll(in)
				if err != nil {
					return fmt.Errorf("read password from stdin: %w", err)
				}
				password = strings.TrimRight(string(b), "\r\n")
			}
			interactive := term.IsTerminal(int(os.Stdin.Fd()))
			if username == "" {
				if !interactive {
					return fmt.Errorf("no username: use --username")
				}
				fmt.Fprint(os.Stderr, "Username: ")
				line, err := bufio.NewReader(os.Stdin).ReadString('\n')
				if err != nil {
					return fmt.Errorf("read username: %w", err)
				}
				username = strings.TrimSpace(line)
			}
			if password == "" {
				if !interactive {
					return fmt.Errorf("no password: use --password-stdin")
				}
				fmt.Fprint(os.Stderr, "Password: ")
				b, err := term.ReadPassword(int(os.Stdin.Fd()))
				fmt.Fprintln(os.Stderr)
				if err != nil {
					return fmt.Errorf("read password: %w", err)
				}
				password = string(b)
			}
			if username == "" || password == "" {
				return fmt.Errorf("login %s: username and password must not be empty", args[0])
			}
			key, err := client.Login(cmd.Context(), args[0], username, password, "", client.WithTLSVerify(tlsVerify), client.WithUserAgent("sealos/"+version))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Login Succeeded (%s)\n", key)
			return nil
		},
	}
	cmd.Flags().StringVarP(&username, "username", "u", "", "user name")
	cmd.Flags().StringVarP(&password, "password", "p", "", "password (prefer --password-stdin)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	cmd.Flags().BoolVar(&tlsVerify, "tls-verify", true, "require HTTPS with a verified certificate (plain HTTP is always allowed for localhost and loopback)")
	return cmd
}

func init() { addCommand(newLoginCmd) }
