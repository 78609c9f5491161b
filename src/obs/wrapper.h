/* The libobs headers the bindings are generated from (see build.rs). */
#include <obs-module.h>
#include <obs.h>
#include <util/base.h>
#include <util/bmem.h>
#include <util/platform.h>
#include <util/text-lookup.h>
#include <stdio.h>
