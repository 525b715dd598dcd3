// ESLint (flat config): @eslint/js and typescript-eslint's recommended rules over the TypeScript
// sources and the plain-JavaScript scripts. `npm run lint` (CI) runs it with `tsc --noEmit`.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/',
      'build*/',
      'node_modules/',
      'prebuilds/',
      'bench/peers/',
      'weights/',
      '.gpu/',
      'examples/**/node_modules/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.{js,mjs,cjs}'],
    languageOptions: { globals: { ...globals.node } },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // TypeScript itself reports undefined names.
    files: ['**/*.ts'],
    rules: {
      'no-undef': 'off',
      // `using _x = ...` holds a resource to the end of the block without reading it
      '@typescript-eslint/no-unused-vars': ['error', { varsIgnorePattern: '^_', argsIgnorePattern: '^_' }],
    },
  },
  {
    // Tests and one-off experiments read untyped JSON (CLI output, reports) and probe private fields.
    files: ['test/**/*.ts', 'tools/experiments/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
