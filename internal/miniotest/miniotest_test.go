package miniotest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestStartStopRestart(t *testing.T) {
	s := Start(t)
	s.NewBucket(t, "plain", false)
	c := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("plain"), Key: aws.String("k"), Body: strings.NewReader("v")}); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	short, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel2()
	if _, err := c.HeadObject(short, &s3.HeadObjectInput{Bucket: aws.String("plain"), Key: aws.String("k")}); err == nil {
		t.Fatal("HeadObject succeeded against a stopped server")
	}
	s.Restart()
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("plain"), Key: aws.String("k")}); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

func TestTLSAndLockedBucket(t *testing.T) {
	s := StartWith(t, Config{TLS: true, KMS: true})
	if !strings.HasPrefix(s.Endpoint, "https://127.0.0.1:") {
		t.Fatalf("endpoint %q", s.Endpoint)
	}
	s.NewBucket(t, "locked", true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := s.Client().GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String("locked")})
	if err != nil {
		t.Fatal(err)
	}
	if out.ObjectLockConfiguration == nil || out.ObjectLockConfiguration.ObjectLockEnabled != "Enabled" {
		t.Fatalf("object lock not enabled: %+v", out.ObjectLockConfiguration)
	}
}
