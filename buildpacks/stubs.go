package buildpacks

import (
	"context"
	"errors"
)

func (b *builder) buildNode(ctx context.Context) error {
	return errors.New("node builds are not supported yet")
}

func (b *builder) buildGo(ctx context.Context) error {
	return errors.New("go builds are not supported yet")
}
