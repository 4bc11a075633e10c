/* test_save.c — ox_model_save's files (issue 15, items 1 and 9): the data file's name is one the
 * model being replaced does not use, the old data goes after the model is in place, leftovers of
 * killed saves go with the next save, and nothing the current model (or another model) uses is
 * removed. The kills and injected failures themselves are tests/python/test_save_atomic.py. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "onnx/write.h"

static char root[512];

static const char *at(const char *name) {
    static char buf[4][700];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, sizeof buf[0], "%s/%s", root, name);
    return b;
}

static bool exists(const char *name) {
    struct stat st;
    return lstat(at(name), &st) == 0;
}

static void put(const char *name, const char *bytes) {
    FILE *f = fopen(at(name), "wb");
    if (f) {
        fputs(bytes, f);
        fclose(f);
    }
}

/* The folder's entries other than "." and "..", and the one (if any) named model.onnx.<8>.data. */
static int entries(char token_name[64]) {
    DIR *d = opendir(root);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    if (token_name) token_name[0] = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        n++;
        if (token_name && strlen(e->d_name) == strlen("model.onnx.12345678.data") &&
            !strncmp(e->d_name, "model.onnx.", 11))
            memcpy(token_name, e->d_name, strlen(e->d_name) + 1);
    }
    closedir(d);
    return n;
}

static float weight[512];

static ox_graph *graph(float value) {
    ox_graph *g = ox_graph_new(20);
    ox_dim d = {.value = 512};
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 1, &d);
    for (int i = 0; i < 512; i++) weight[i] = value;
    int64_t dims = 512;
    ox_graph_add_initializer(g, "w", OX_FLOAT, 1, &dims, weight, sizeof weight);
    ox_node *n = ox_graph_add_node(g, "Add", NULL, 2, (ox_value *[]){x, g->initializers[0]}, 1);
    ox_value_set_name(g, n->outputs[0], "y");
    ox_graph_add_output(g, n->outputs[0]);
    CHECK(!ox_graph_failed(g));
    return g;
}

static void save(ox_graph *g, bool ext, const char *name, ox_code want) {
    ox_save_options o = {
        .include_initializers = true, .external_data = ext, .choose_data_location = true, .external_min_bytes = 1024};
    ox_error err = {0};
    ox_code rc = ox_model_save(g, &o, at(name), &err);
    if (rc != want) fprintf(stderr, "save %s: %s\n", name, err.msg);
    CHECK_EQ_INT(rc, want);
}

int main(void) {
    check_tmp_dir(root, sizeof root, "save");
    ox_graph *g = graph(1);
    char tok[64], tok2[64];

    /* the first save takes torch.onnx's name */
    save(g, true, "model.onnx", OX_OK);
    CHECK(exists("model.onnx.data"));
    CHECK_EQ_INT(entries(tok), 2);

    /* the second may not: the model in place uses it; the old data goes after */
    save(g, true, "model.onnx", OX_OK);
    CHECK_EQ_INT(entries(tok), 2);
    CHECK(!exists("model.onnx.data") && tok[0]);

    /* the third takes the usual name again, and removes the second's */
    save(g, true, "model.onnx", OX_OK);
    CHECK_EQ_INT(entries(NULL), 2);
    CHECK(exists("model.onnx.data") && !exists(tok));

    /* leftovers of killed saves of this model go; another model's and unrelated files stay */
    put(".model.onnx.oxport-tmp-999999999-7", "partial");
    put("model.onnx.0badf00d.data", "unreferenced");
    put(".other.onnx.oxport-tmp-999999999-1", "another model's");
    put("model.onnx.notes", "not a name the writer gives");
    save(g, true, "model.onnx", OX_OK);
    CHECK(!exists(".model.onnx.oxport-tmp-999999999-7") && !exists("model.onnx.0badf00d.data"));
    CHECK(exists(".other.onnx.oxport-tmp-999999999-1") && exists("model.onnx.notes"));
    CHECK(!exists("model.onnx.data")); /* it was the old model's */
    CHECK_EQ_INT(entries(tok), 4);
    unlink(at(".other.onnx.oxport-tmp-999999999-1"));
    unlink(at("model.onnx.notes"));

    /* inline: the old data goes too */
    save(g, false, "model.onnx", OX_OK);
    CHECK_EQ_INT(entries(NULL), 1);

    /* a model that cannot be parsed: nothing beside it is assumed unused */
    put("model.onnx", "\x0a\xff\xff garbage");
    put("model.onnx.data", "maybe its data");
    save(g, true, "model.onnx", OX_OK);
    CHECK_EQ_INT(entries(tok), 3);
    CHECK(exists("model.onnx.data") && tok[0]);
    /* ... once a model the writer can read is in place, the unreferenced one goes */
    save(g, true, "model.onnx", OX_OK);
    CHECK_EQ_INT(entries(tok2), 2);
    CHECK(!exists(tok) || !strcmp(tok, tok2));

    /* a path that is a folder: refused before anything is written */
    mkdir(at("dir.onnx"), 0777);
    put("dir.onnx.data", "someone's");
    save(g, true, "dir.onnx", OX_EIO);
    FILE *f = fopen(at("dir.onnx.data"), "rb");
    char back[32] = {0};
    if (f) {
        CHECK(fread(back, 1, sizeof back - 1, f) == 9);
        fclose(f);
    }
    CHECK_STR(back, "someone's");
    unlink(at("dir.onnx.data"));
    rmdir(at("dir.onnx"));

    /* a data file named by the old model that is not named after it (shared with another
     * model, say) is never removed */
    ox_save_options shared = {.include_initializers = true, .external_data = true, .data_location = "shared.bin"};
    ox_error err = {0};
    CHECK_EQ_INT(ox_model_save(g, &shared, at("model.onnx"), &err), OX_OK);
    save(g, true, "model.onnx", OX_OK);
    CHECK(exists("shared.bin"));

    ox_graph_free(g);
    DIR *d = opendir(root);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(at(e->d_name));
    if (d) closedir(d);
    rmdir(root);
    return CHECK_DONE();
}
