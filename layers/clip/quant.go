package clip

import (
	"fmt"

	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/recipes"
)

// RecipeModules lists the modules of a CLIP configuration that a recipe can
// target: every Linear (LinearModules) with its weight's in/out features,
// and each "...self_attn" attention module.
func RecipeModules(cfg Config) []recipes.Module {
	return recipes.ModulesOf(LinearModules(cfg), func(name string) (in, out int) {
		p, ok := ParamByName(cfg, name+".weight")
		if !ok || len(p.Shape) != 2 {
			return 0, 0
		}
		return p.Shape[1], p.Shape[0]
	})
}

// QuantHook resolves recipe r against the modules of cfg and builds the
// layers.QuantHook that fake-quantizes the model as the plan says.
func QuantHook(r *recipes.Recipe, cfg Config) (*layers.QuantHook, *recipes.Plan, error) {
	plan, err := recipes.Resolve(r, RecipeModules(cfg))
	if err != nil {
		return nil, nil, err
	}
	hook, err := layers.NewQuantHook(plan, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("recipe %s: %w", r.Source(), err)
	}
	return hook, plan, nil
}
