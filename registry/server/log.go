package server

import (
	"github.com/sirupsen/logrus"
)

// quietFormatter drops distribution's per-request error lines for client errors (a 404
// for a blob a client probes, a 401 before credentials), which it logs at error level,
// and keeps everything else: server errors (5xx) and messages outside requests.
type quietFormatter struct{ logrus.Formatter }

func (f quietFormatter) Format(e *logrus.Entry) ([]byte, error) {
	if _, inRequest := e.Data["http.request.id"]; inRequest {
		status, _ := e.Data["http.response.status"].(int)
		if status < 500 {
			return nil, nil
		}
	}
	return f.Formatter.Format(e)
}

// configureLogging sets distribution's (logrus') level, and the quiet filter at "error".
func configureLogging(level logrus.Level) {
	logrus.SetLevel(level)
	switch cur := logrus.StandardLogger().Formatter.(type) {
	case quietFormatter:
		if level > logrus.ErrorLevel {
			logrus.SetFormatter(cur.Formatter)
		}
	default:
		if level <= logrus.ErrorLevel {
			logrus.SetFormatter(quietFormatter{Formatter: cur})
		}
	}
}
