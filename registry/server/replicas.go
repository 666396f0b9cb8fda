package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/redis/go-redis/v9"
)

// Replicas of a hub on remote storage (s3) see each other through their shared Redis:
// each writable one keeps a key "sealos::writer::<id>" alive (writerTTL, renewed every
// third of it), so that garbage collection, which must not run while any replica may
// write, can tell. Without Redis nothing can tell, and collection asks the user to vouch.

const (
	writerKeyPrefix = "sealos::writer::"
	writerTTL       = 15 * time.Second
)

// redisClient connects to the Redis dc configures (as distribution does: the same
// addresses, database, credentials, sentinel and TLS), nil when it configures none.
func redisClient(dc *configuration.Configuration) (redis.UniversalClient, error) {
	if dc == nil || len(dc.Redis.Options.Addrs) == 0 {
		return nil, nil
	}
	o := dc.Redis.Options
	opts := &redis.UniversalOptions{
		Addrs: o.Addrs, DB: o.DB, Username: o.Username, Password: o.Password,
		SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword, MasterName: o.MasterName,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
	}
	if t := dc.Redis.TLS; t.Certificate != "" || t.Key != "" || len(t.RootCAs) > 0 {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if t.Certificate != "" && t.Key != "" {
			cert, err := tls.LoadX509KeyPair(t.Certificate, t.Key)
			if err != nil {
				return nil, fmt.Errorf("redis TLS: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		if len(t.RootCAs) > 0 {
			pool := x509.NewCertPool()
			for _, ca := range t.RootCAs {
				pem, err := os.ReadFile(ca)
				if err != nil {
					return nil, fmt.Errorf("redis TLS: %w", err)
				}
				if !pool.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("redis TLS: no certificate in %s", ca)
				}
			}
			cfg.RootCAs = pool
		}
		opts.TLSConfig = cfg
	}
	return redis.NewUniversalClient(opts), nil
}

// announceWriter writes this hub's writer key and keeps it alive; the function it
// returns stops that and removes the key. A replica killed outright is forgotten after
// writerTTL.
func announceWriter(rdb redis.UniversalClient, what string) (id string, stop func(), err error) {
	host, _ := os.Hostname()
	id = fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixNano()%1e6)
	key := writerKeyPrefix + id
	ctx, cancel := context.WithCancel(context.Background())
	if err := rdb.Set(ctx, key, what, writerTTL).Err(); err != nil {
		cancel()
		return "", nil, fmt.Errorf("redis: announce this replica: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(writerTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = rdb.Set(ctx, key, what, writerTTL).Err()
			}
		}
	}()
	return id, func() {
		cancel()
		<-done
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
		rdb.Del(dctx, key)
		dcancel()
	}, nil
}

// liveWriters lists the writer keys in Redis (replicas that may write).
func liveWriters(ctx context.Context, rdb redis.UniversalClient) ([]string, error) {
	var out []string
	iter := rdb.Scan(ctx, 0, writerKeyPrefix+"*", 100).Iterator()
	for iter.Next(ctx) {
		out = append(out, strings.TrimPrefix(iter.Val(), writerKeyPrefix))
	}
	return out, iter.Err()
}

// forgetDescriptors drops distribution's blob descriptor cache ("blobs::*" and
// "repository::*::blobs*") from Redis after a collection, so that no replica answers for a
// deleted blob from it. The cache fills again as blobs are asked for.
func forgetDescriptors(ctx context.Context, rdb redis.UniversalClient) error {
	var errs []error
	for _, pattern := range []string{"blobs::*", "repository::*::blobs*"} {
		iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
			if len(keys) == 1000 {
				errs = append(errs, rdb.Del(ctx, keys...).Err())
				keys = keys[:0]
			}
		}
		if len(keys) > 0 {
			errs = append(errs, rdb.Del(ctx, keys...).Err())
		}
		errs = append(errs, iter.Err())
	}
	return errors.Join(errs...)
}
