/* help.c: --help and docs/flags.md, written from the flag table (see options.h). */
#include <stdio.h>
#include <string.h>

#include "flags.h"
#include "options.h"

/* The default as shown, into buf ("" if none is worth showing). */
static const char *default_text(const flag *f, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", f->shown ? f->shown : f->kind != FLAG_SWITCH && f->def ? f->def : "");
    return buf;
}

/* text from column `indent` to `width`, broken between words and at its own newlines (the first
 * line starts where the cursor is) */
static void wrap(FILE *out, const char *text, int indent, int width)
{
    int col = indent;
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, " \n");
        if (col > indent && col + 1 + (int)n > width) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        }
        col += fprintf(out, "%s%.*s", col > indent ? " " : "", (int)n, p);
        p += n;
        if (*p == '\n' && p[1]) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        }
        p += *p != 0;
    }
}

/* The section row i starts, or NULL if it continues the one before. */
static const char *section_start(int i)
{
    const char *s = nndl_flags[i].section;
    return i == 0 || strcmp(s, nndl_flags[i - 1].section) ? s : NULL;
}

void nndl_options_usage(FILE *out)
{
    fputs("usage: mpirun -np P nndl-train [FLAGS]\n"
          "Train a fully connected network on MNIST with mini-batch SGD, data-parallel over\n"
          "the MPI ranks. With no flags: the book's chapter-1 network (784-30-10, quadratic\n"
          "cost, eta 3.0, batch 10).\n",
          out);
    for (int i = 0; i < nndl_n_flags; i++) {
        const flag *f = &nndl_flags[i];
        char left[64], def[128];
        if (section_start(i)) fprintf(out, "\n%s\n", f->section);
        snprintf(left, sizeof left, "--%s%s%s", f->name, f->meta ? " " : "",
                 f->meta ? f->meta : "");
        fprintf(out, "  %-24s ", left);
        char text[1024];
        default_text(f, def, sizeof def);
        snprintf(text, sizeof text, "%s%s%s%s", f->help, def[0] ? " [" : "", def,
                 def[0] ? "]" : "");
        wrap(out, text, 27, 100);
        fputc('\n', out);
    }
    fputs("\nExample (the book's chapter-3 network on 2 ranks, JSON log):\n"
          "  mpirun -np 2 nndl-train --sizes 784,100,10 --cost cross-entropy --init nielsen \\\n"
          "      --eta 0.5 --epochs 30 --log runs/ch3.jsonl\n"
          "Signals: SIGUSR1, SIGTERM or SIGINT make every rank stop at the next step, write a\n"
          "checkpoint and exit with status 75 (resume with --resume); a second signal aborts.\n"
          "Exit status: 0 done, 2 bad flags or input files, 75 stopped (resumable), 1 other "
          "failures.\n",
          out);
}

/* text with newlines as <br> and Markdown's table and emphasis characters escaped */
static void md_text(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\n') {
            fputs("<br>", out);
            continue;
        }
        if (*s == '|' || *s == '*' || *s == '_' || *s == '<') fputc('\\', out);
        fputc(*s, out);
    }
}

void nndl_options_markdown(FILE *out)
{
    static const char *resume[] = {"must agree", "may change", "this launch only"};
    fputs("# nndl-train flags\n\n"
          "Made by `nndl-train --help-markdown` from the flag table in `src/cli/flags.c`,\n"
          "which also makes `--help`, the parser, the configuration stored in the run file and\n"
          "the `--resume` merge; the test `flags_doc` fails when this file differs from what\n"
          "the table makes. The last column says what `--resume` does with a flag: *must\n"
          "agree* (stored: giving another value is an error), *may change* (stored, a new\n"
          "value applies), *this launch only* (not stored).\n",
          out);
    for (int i = 0; i < nndl_n_flags; i++) {
        const flag *f = &nndl_flags[i];
        char def[128];
        if (section_start(i))
            fprintf(out,
                    "\n## %s\n\n| flag | meaning | default | `--resume` |\n|---|---|---|---|\n",
                    f->section);
        fprintf(out, "| `--%s%s%s` | ", f->name, f->meta ? " " : "", f->meta ? f->meta : "");
        md_text(out, f->help);
        fputs(" | ", out);
        if (default_text(f, def, sizeof def)[0]) fprintf(out, "`%s`", def);
        fprintf(out, " | %s |\n", resume[f->resume]);
    }
}
