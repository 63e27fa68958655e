package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/recipes"
	"github.com/spf13/cobra"
)

// newRecipeCmd builds `qatclip recipe` with its subcommands validate and show.
func newRecipeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "recipe",
		Short: "Check recipe files and print the per-layer plan they give a model",
		Long: "Recipes are YAML files describing how a CLIP model is quantized, trained,\n" +
			"evaluated and exported (docs/RECIPES.md). A recipe argument is a file, or the\n" +
			"name of a recipe shipped in the binary: " + fmt.Sprint(recipes.Shipped()) + ".",
	}
	cmd.AddCommand(newRecipeValidateCmd(), newRecipeShowCmd())
	return cmd
}

// newRecipeValidateCmd builds `qatclip recipe validate FILE...`.
func newRecipeValidateCmd() *cobra.Command {
	var model string
	var sets []string
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check recipes strictly; print \"ok FILE\" for each good one",
		Long: "validate loads each recipe strictly (unknown keys, wrong types, out-of-range\n" +
			"values, invalid patterns) and prints \"ok FILE\" or one error line naming the\n" +
			"file, line and key. With --model it also resolves each recipe against that\n" +
			"model, which catches patterns matching no layer and target/ignore conflicts.\n" +
			"Exits 1 when any recipe is invalid.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var modules []recipes.Module
			if model != "" {
				var err error
				if modules, _, err = clipModules(model); err != nil {
					return err
				}
			}
			bad := 0
			for _, file := range args {
				r, err := recipes.Load(file, sets...)
				if err == nil && modules != nil {
					_, err = recipes.Resolve(r, modules)
				}
				if err != nil {
					bad++
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), "ok", file)
			}
			if bad > 0 {
				return fmt.Errorf("recipe validate: %d of %d recipes invalid", bad, len(args))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&model, "model", "", "also resolve against this HF model directory or hub id (local cache)")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a recipe key, key.path=value (repeatable)")
	return cmd
}

// newRecipeShowCmd builds `qatclip recipe show FILE [--model DIR]`.
func newRecipeShowCmd() *cobra.Command {
	var model string
	var sets []string
	cmd := &cobra.Command{
		Use:   "show FILE",
		Short: "Print the per-layer quantization plan of a recipe on a model",
		Long: "show resolves the recipe against a model's Linear modules and prints one row\n" +
			"per layer: weight scheme and activation scheme, or \"float: REASON\"; with\n" +
			"attention_matmuls, one row per attention module too. The model is --model,\n" +
			"else the recipe's model.source (an HF directory or a hub id in the local HF\n" +
			"cache); openai/clip-vit-base-patch32 falls back to its built-in sizes when it\n" +
			"is not in the cache.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := recipes.Load(args[0], sets...)
			if err != nil {
				return err
			}
			source := model
			if source == "" {
				source = r.Model.Source
			}
			modules, where, err := clipModules(source)
			if err != nil {
				if model != "" || source != recipes.Default().Model.Source {
					return err
				}
				modules = clip.RecipeModules(clip.DefaultConfig())
				where = source + " (not in the local HF cache: built-in sizes)"
			}
			plan, err := recipes.Resolve(r, modules)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "recipe %s (%s) on model %s\n\n", r.Name, r.Source(), where)
			return plan.WriteTable(out)
		},
	}
	cmd.Flags().StringVar(&model, "model", "", "HF model directory or hub id (local cache); default: the recipe's model.source")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a recipe key, key.path=value (repeatable)")
	return cmd
}

// clipModules reads the HF config of the CLIP model at source (a directory,
// a config.json, or a hub id in the local HF cache) and lists its
// quantizable modules. where names the config file read.
func clipModules(source string) (modules []recipes.Module, where string, err error) {
	path, err := clip.ResolveSource(source)
	if err != nil {
		return nil, "", fmt.Errorf("model %s: %w", source, err)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "config.json")
	}
	cfg, err := clip.LoadConfig(path)
	if err != nil {
		return nil, "", fmt.Errorf("model %s: %w", source, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, "", fmt.Errorf("model %s: %w", path, err)
	}
	return clip.RecipeModules(cfg), path, nil
}
