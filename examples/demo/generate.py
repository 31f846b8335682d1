#!/usr/bin/env python3
# Writes the demo data in this folder. Deterministic (fixed seed); standard library only.
# Run it again after changing a scenario: python3 examples/demo/generate.py
import json, random, os, copy
random.seed(42)
SUB="6f1c2c3d-1111-4a5b-9c8d-0a1b2c3d4e5f"; TEN="72f988bf-86f1-41af-91ab-2d7cd011db47"
SUBID=f"/subscriptions/{SUB}"
RG=f"{SUBID}/resourceGroups/rg-platform-prod"
AKS=f"{RG}/providers/Microsoft.ContainerService/managedClusters/aks-prod-weu"
ACR=f"{RG}/providers/Microsoft.ContainerRegistry/registries/acrplatformprod"
UAMI=f"{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-payments-api"
FIC=f"{UAMI}/federatedIdentityCredentials/fic-payments-api"
ISSUER=f"https://westeurope.oic.prod-aks.azure.com/{TEN}/0f4e1d2c-aaaa-bbbb-cccc-1234567890ab/"
ADMINS="c0ffee00-1111-2222-3333-444455556666"; KUBELET="5e6f7a8b-0000-4000-8000-00000000a001"
CI_SP="1d2e3f40-0000-4000-8000-00000000c1c1"; CI_APP="9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
MALLORY="6d6d6d6d-0000-4000-8000-00000000dead"; BOB="7e7e7e7e-0000-4000-8000-00000000b0b0"
AZ_CLI="04b07795-8ddb-461a-bbee-02f9e1bf7b46"
ROLE={"Owner":"8e3af657-a8ff-443c-a75c-2fe8c4bcb635","Contributor":"b24988ac-6180-42a0-ab88-20f7382dd24c",
      "User Access Administrator":"18d7d88d-d35e-4fb5-a5c3-7773c20a72d9","AcrPull":"7f951dda-4ed3-4680-a7ca-43fe172d538d",
      "Azure Kubernetes Service RBAC Cluster Admin":"b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"}
# Role assignment ids (day 1 grants, day 2 Owner grant, bob's refused grant).
A1_ID="3c9f1a2b-0001-4a00-8000-000000000001"; A2_ID="3c9f1a2b-0002-4a00-8000-000000000002"; A3_ID="3c9f1a2b-0003-4a00-8000-000000000003"
OWN_ID="7e1e7e1e-0004-4a00-8000-000000000004"; BOB_RA_ID="7e1e7e1e-0005-4a00-8000-000000000005"
def ra_id(scope, guid): return f"{scope}/providers/Microsoft.Authorization/roleAssignments/{guid}"
A1=ra_id(AKS,A1_ID); A2=ra_id(ACR,A2_ID); A3=ra_id(RG,A3_ID); OWN=ra_id(SUBID,OWN_ID); BOB_RA=ra_id(RG,BOB_RA_ID)
CR_ID="2f4c8d6e-1a3b-4c5d-8e9f-0a1b2c3d4e5f"; CR=f"{SUBID}/providers/Microsoft.Authorization/roleDefinitions/{CR_ID}"

def gid(): return "%08x-%04x-4%03x-%x%03x-%012x"%(random.getrandbits(32),random.getrandbits(16),random.getrandbits(12),random.choice([8,9,10,11]),random.getrandbits(12),random.getrandbits(48))
def nodash(g): return g.replace("-","")

# The role each caller's request was authorised by (identity.authorization.evidence), consistent with the story:
# alice is Owner of the subscription; the CI principal is Contributor on rg-platform-prod (granted by alice on day 1);
# mallory is User Access Administrator of the subscription until she grants herself Owner; bob is Contributor of the
# subscription, which cannot write role assignments (his grant is refused: no evidence on a denied request).
EVIDENCE={
 "alice":[("Owner",SUBID,"5f0a11ce3b2d4c1e9a7b6c5d4e3f2a10")],
 "ci":[("Contributor",RG,nodash(A3_ID))],
 "mallory":[("User Access Administrator",SUBID,"c4d5e6f708194a2b8c3d4e5f6a7b8c9d"),("Owner",SUBID,nodash(OWN_ID))],
 "bob":[("Contributor",SUBID,"b0b0c0de7a6b4c5d8e9f0a1b2c3d4e5f")],
}
PEOPLE={
 "alice":dict(upn="alice@contoso.com",name="Alice Jansen",given="Alice",sur="Jansen",oid="a11ce000-0000-4000-8000-0000000a11ce",ip="203.0.113.10",app=AZ_CLI),
 "ci":dict(upn=None,oid=CI_SP,ip="20.50.2.3",app=CI_APP),
 "mallory":dict(upn="mallory@contoso.com",name="Mallory Vos",given="Mallory",sur="Vos",oid=MALLORY,ip="198.51.100.77",app=AZ_CLI),
 "bob":dict(upn="bob@contoso.com",name="Bob de Wit",given="Bob",sur="de Wit",oid=BOB,ip="203.0.113.44",app="c44b4083-3bb0-49c1-b47d-974e53cbdf3c"),
}
def claims(who, t_epoch):
    p=PEOPLE[who]
    c={"aud":"https://management.core.windows.net/","iss":f"https://sts.windows.net/{TEN}/","iat":str(t_epoch-600),"nbf":str(t_epoch-600),"exp":str(t_epoch+3900),
       "appid":p["app"],"appidacr":"0" if p["upn"] else "1","ipaddr":p["ip"],
       "http://schemas.microsoft.com/identity/claims/objectidentifier":p["oid"],"http://schemas.microsoft.com/identity/claims/tenantid":TEN,"ver":"1.0"}
    if p["upn"]:
        c.update({"http://schemas.microsoft.com/claims/authnmethodsreferences":"pwd,mfa",
                  "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn":p["upn"],"name":p["name"],"idtyp":"user",
                  "http://schemas.microsoft.com/identity/claims/scope":"user_impersonation"})
    else:
        c.update({"http://schemas.microsoft.com/identity/claims/identityprovider":f"https://sts.windows.net/{TEN}/","idtyp":"app"})
    return c

STATUS={"Start":None,"Accept":"Accepted","Failure":"Forbidden"}
def rec(who, time, op, resource, result, corr, category="Administrative", req=None, resp=None, success_code="OK", denied=False, owner_since=None):
    p=PEOPLE[who]
    ev_list=EVIDENCE[who]
    ev=ev_list[-1] if (owner_since and time>=owner_since) else ev_list[0]
    auth={"scope":resource,"action":op}
    if not denied:
        role,scope,aid=ev
        auth["evidence"]={"role":role,"roleAssignmentScope":scope,"roleAssignmentId":aid,"roleDefinitionId":nodash(ROLE[role]),
                          "principalId":nodash(p["oid"]),"principalType":"User" if p["upn"] else "ServicePrincipal"}
    code=success_code if result=="Success" else STATUS[result]
    props={}
    if code: props["statusCode"]=code
    props.update({"serviceRequestId":gid() if result!="Start" else None,"eventCategory":category,"entity":resource,"message":op,"hierarchy":f"{TEN}/{SUB}"})
    if props["serviceRequestId"] is None: del props["serviceRequestId"]
    if req is not None: props["requestbody"]=json.dumps(req,separators=(",",":"))
    if resp is not None: props["responseBody"]=json.dumps(resp,separators=(",",":"))
    if result=="Failure":
        props["statusMessage"]=json.dumps({"error":{"code":"AuthorizationFailed","message":f"The client '{p['upn'] or p['app']}' with object id '{p['oid']}' does not have authorization to perform action '{op}' over scope '{resource}' or the scope is invalid. If access was recently granted, please refresh your credentials."}},separators=(",",":"))
    sig={"Start":"Started.","Accept":"Accepted.Created","Success":f"Succeeded.{success_code}","Failure":"Failed.Forbidden"}[result]
    dur=0 if result=="Start" else random.randint(60,4000)
    return {"time":time,"resourceId":resource.upper(),"operationName":op.upper(),"category":category,"resultType":result,"resultSignature":sig,
            "durationMs":dur,"callerIpAddress":p["ip"],"correlationId":corr,
            "identity":{"authorization":auth,"claims":claims(who,epoch(time))},
            "level":"Information","location":"global","properties":props}
import datetime
def epoch(t): return int(datetime.datetime.strptime(t[:19],"%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp())
def t(day,h,m,s,frac=None): return "2026-11-%02dT%02d:%02d:%02d.%07dZ"%(day,h,m,s,frac if frac is not None else random.randint(0,9999999))
def phases(who, day, h, m, op, resource, req=None, resp=None, fail=False, corr=None, code="OK", accept=True, owner_since=None):
    corr=corr or gid()
    out=[rec(who,t(day,h,m,1),op,resource,"Start",corr,req=req,denied=fail,owner_since=owner_since)]
    if fail:
        out.append(rec(who,t(day,h,m,2),op,resource,"Failure",corr,denied=True)); return out
    if accept: out.append(rec(who,t(day,h,m,2),op,resource,"Accept",corr,owner_since=owner_since))
    out.append(rec(who,t(day,h,m,4),op,resource,"Success",corr,resp=resp,success_code=code,owner_since=owner_since))
    return out
def ra_body(role, principal, ptype, scope, pascal=False, aid=None):
    rd=f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    if pascal: return {"Id":aid,"Properties":{"PrincipalId":principal,"PrincipalType":ptype,"RoleDefinitionId":rd,"Scope":scope}}
    return {"properties":{"roleDefinitionId":rd,"principalId":principal,"principalType":ptype,"scope":scope}}
def ra_resp(role, principal, ptype, scope, guid, who_oid, created):
    return {"properties":{"roleDefinitionId":f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role}","principalId":principal,"principalType":ptype,
            "scope":scope,"condition":None,"conditionVersion":None,"createdOn":created,"updatedOn":created,"createdBy":None,"updatedBy":who_oid,"delegatedManagedIdentityResourceId":None,"description":None},
            "id":ra_id(scope,guid),"type":"Microsoft.Authorization/roleAssignments","name":guid}
def cluster_body(local_off=True):
    return {"location":"westeurope","identity":{"type":"SystemAssigned"},"sku":{"name":"Base","tier":"Standard"},
      "properties":{"kubernetesVersion":"1.33.2","dnsPrefix":"aks-prod-weu","enableRBAC":True,"disableLocalAccounts":local_off,
        "aadProfile":{"managed":True,"enableAzureRBAC":True,"adminGroupObjectIDs":[ADMINS],"tenantID":TEN},
        "servicePrincipalProfile":{"clientId":"msi"},"oidcIssuerProfile":{"enabled":True},"securityProfile":{"workloadIdentity":{"enabled":True}},
        "identityProfile":{"kubeletidentity":{"resourceId":f"/subscriptions/{SUB}/resourceGroups/MC_rg-platform-prod_aks-prod-weu_westeurope/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aks-prod-weu-agentpool","clientId":"5e6f7a8b-0000-4000-8000-00000000a002","objectId":KUBELET}},
        "agentPoolProfiles":[{"name":"system","count":3,"vmSize":"Standard_D4s_v5","osDiskSizeGB":128,"osType":"Linux","osSKU":"AzureLinux","type":"VirtualMachineScaleSets","mode":"System","orchestratorVersion":"1.33.2","enableAutoScaling":True,"minCount":3,"maxCount":6,"availabilityZones":["1","2","3"],"upgradeSettings":{"maxSurge":"33%"}}],
        "networkProfile":{"networkPlugin":"azure","networkPluginMode":"overlay","networkPolicy":"cilium","networkDataplane":"cilium","podCidr":"10.244.0.0/16","serviceCidr":"10.0.0.0/16","dnsServiceIP":"10.0.0.10","outboundType":"loadBalancer","loadBalancerSku":"standard"},
        "autoUpgradeProfile":{"upgradeChannel":"patch","nodeOSUpgradeChannel":"NodeImage"}}}

# ---------- noise: the rest of what a subscription's diagnostic setting streams ----------
ST=f"{RG}/providers/Microsoft.Storage/storageAccounts/stplatformlogs"
VM=f"{SUBID}/resourceGroups/rg-jumpbox/providers/Microsoft.Compute/virtualMachines/vm-jump-01"
WEB=f"{SUBID}/resourceGroups/rg-web/providers/Microsoft.Web/sites/status-page/config/appsettings"
DIAG=f"{AKS}/providers/microsoft.insights/diagnosticSettings/to-eventhub"
KV=f"{RG}/providers/Microsoft.KeyVault/vaults/kv-platform-prod"
NSG=f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg-aks-nodes"
EVH=f"{SUBID}/resourceGroups/rg-observability/providers/Microsoft.EventHub/namespaces/evhns-platform-prod"
NOISE=[
 ("Microsoft.Storage/storageAccounts/write",ST,True,{"sku":{"name":"Standard_ZRS"},"kind":"StorageV2","location":"westeurope","properties":{"minimumTlsVersion":"TLS1_2","allowBlobPublicAccess":False,"supportsHttpsTrafficOnly":True}}),
 ("Microsoft.Compute/virtualMachines/start/action",VM,False,None),
 ("Microsoft.Web/sites/config/write",WEB,False,{"properties":{"WEBSITE_RUN_FROM_PACKAGE":"1","STATUS_PAGE_TITLE":"Contoso platform status","APPLICATIONINSIGHTS_CONNECTION_STRING":"******"}}),
 ("Microsoft.Insights/diagnosticSettings/write",DIAG,True,{"properties":{"logs":[{"category":"kube-audit-admin","enabled":True},{"category":"guard","enabled":True},{"category":"kube-apiserver","enabled":False}],"metrics":[],"eventHubAuthorizationRuleId":f"{EVH}/authorizationrules/RootManageSharedAccessKey","eventHubName":"aks-audit"}}),
 ("Microsoft.KeyVault/vaults/write",KV,True,{"location":"westeurope","properties":{"tenantId":TEN,"sku":{"family":"A","name":"standard"},"enableRbacAuthorization":True,"enableSoftDelete":True,"enablePurgeProtection":True}}),
 ("Microsoft.Network/networkSecurityGroups/write",NSG,True,{"location":"westeurope","properties":{"securityRules":[{"name":"deny-ssh-internet","properties":{"priority":100,"direction":"Inbound","access":"Deny","protocol":"Tcp","sourceAddressPrefix":"Internet","sourcePortRange":"*","destinationAddressPrefix":"*","destinationPortRange":"22"}}]}}),
]
def health(day,h,m):
    active=t(day,h,m,random.randint(0,59))
    return {"time":active,"resourceId":f"/SUBSCRIPTIONS/{SUB.upper()}/RESOURCEGROUPS/RG-JUMPBOX/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/VM-JUMP-01",
            "operationName":"Microsoft.Resourcehealth/healthevent/Activated/action","category":"ResourceHealth","resultType":"Active","resultSignature":"",
            "durationMs":"0","correlationId":gid(),"level":"Critical","location":"global",
            "properties":{"eventCategory":"ResourceHealth","eventProperties":{"title":"We're sorry, your virtual machine isn't available because it is being redeployed due to an unexpected failure on the host server","details":"","currentHealthStatus":"Unavailable","previousHealthStatus":"Available","type":"Downtime","cause":"PlatformInitiated"}}}
def signin(who, day, h, m):
    p=PEOPLE[who]; ts=t(day,h,m,random.randint(0,59)); sid=gid()
    return {"time":ts,"resourceId":f"/tenants/{TEN}/providers/Microsoft.aadiam","operationName":"Sign-in activity","operationVersion":"1.0","category":"SignInLogs",
            "tenantId":TEN,"resultType":"0","resultSignature":"None","durationMs":0,"callerIpAddress":p["ip"],"correlationId":gid(),"identity":p["name"],"Level":4,"location":"NL",
            "properties":{"id":sid,"createdDateTime":ts,"userDisplayName":p["name"],"userPrincipalName":p["upn"],"userId":p["oid"],"appId":p["app"],
                          "appDisplayName":"Microsoft Azure CLI" if p["app"]==AZ_CLI else "Azure Portal","ipAddress":p["ip"],"status":{"errorCode":0},
                          "clientAppUsed":"Mobile Apps and Desktop clients","conditionalAccessStatus":"success","isInteractive":True,
                          "resourceDisplayName":"Windows Azure Service Management API","resourceId":"797f4846-ba00-4fd7-ba43-dac1f8f63013",
                          "riskLevelDuringSignIn":"none","riskState":"none","authenticationRequirement":"multiFactorAuthentication"}}
def noise(day, target, callers):
    out=[]
    while len(out)<target:
        h=random.randint(7,18); m=random.randint(0,59); k=random.random()
        if k<0.08: out.append(health(day,h,m)); continue
        if k<0.20: out.append(signin(random.choice([c for c in callers if c!="ci"]),day,h,m)); continue
        op,res,create,body=random.choice(NOISE); who=random.choice(callers)
        if who=="ci":
            if not res.startswith(RG): who="alice"           # the CI principal is Contributor on rg-platform-prod only
            elif day==2 and h>=2: who="alice"                # ... and loses it at 02:30 on day 2
            elif day==1 and h<10: h=10+random.randint(0,8)   # ... and gets it at 09:25 on day 1
        out.extend(phases(who,day,h,m,op,res,req=body,code="Created" if (create and random.random()<0.2) else "OK",accept=random.random()<0.6))
    return out
def envelopes(chunks): return "".join(json.dumps({"records":c},separators=(",",":"))+"\n" for c in chunks)
def split(records, n):
    k=-(-len(records)//n); return [records[i:i+k] for i in range(0,len(records),k)]

# ---------- day 1: the approved state ----------
RA="Microsoft.Authorization/roleAssignments/write"
day1=[]
day1+=phases("alice",2,9,14,RA,A1,req=ra_body(ROLE["Azure Kubernetes Service RBAC Cluster Admin"],ADMINS,"Group",AKS),code="Created",
             resp=ra_resp(ROLE["Azure Kubernetes Service RBAC Cluster Admin"],ADMINS,"Group",AKS,A1_ID,PEOPLE["alice"]["oid"],"2026-11-02T09:14:03.2216570Z"))
day1+=phases("alice",2,9,20,RA,A2,req=ra_body(ROLE["AcrPull"],KUBELET,"ServicePrincipal",ACR,pascal=True,aid=A2_ID),code="Created")
day1+=phases("alice",2,9,25,RA,A3,req=ra_body(ROLE["Contributor"],CI_SP,"ServicePrincipal",RG),code="Created")
day1+=phases("ci",2,10,2,"Microsoft.ContainerService/managedClusters/write",AKS,req=cluster_body(True))
day1+=phases("ci",2,10,30,"Microsoft.ManagedIdentity/userAssignedIdentities/write",UAMI,req={"location":"westeurope","tags":{}},code="Created",
   resp={"id":UAMI,"name":"id-payments-api","type":"Microsoft.ManagedIdentity/userAssignedIdentities","location":"westeurope","tags":{},"properties":{"tenantId":TEN,"principalId":"3a3a3a3a-0000-4000-8000-0000000000b1","clientId":"4b4b4b4b-0000-4000-8000-0000000000b2"}})
FICB={"properties":{"issuer":ISSUER,"subject":"system:serviceaccount:payments:payments-api","audiences":["api://AzureADTokenExchange"]}}
day1+=phases("ci",2,10,31,"Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write",FIC,req=FICB,code="Created",
   resp={"id":FIC,"name":"fic-payments-api","type":"Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",**FICB})
relevant1=len(day1)
day1+=noise(2,round(relevant1*2.2),["alice","alice","ci","bob"])
day1.sort(key=lambda r:r["time"])

# ---------- day 2: the changes ----------
OWNER_AT="2026-11-03T02:17:04"   # from here on mallory's requests are authorised by her new Owner assignment
own=phases("mallory",3,2,17,RA,OWN,req=ra_body(ROLE["Owner"],MALLORY,"User",SUBID),code="Created")
own_start,own_accept,own_success=own
rest=[]
rest+=phases("mallory",3,2,21,"Microsoft.ContainerService/managedClusters/write",AKS,req=cluster_body(False),owner_since=OWNER_AT)
c=gid()
rest+=[rec("mallory",t(3,2,24,1),"Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action",AKS,"Start",c,owner_since=OWNER_AT),
       rec("mallory",t(3,2,24,2),"Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action",AKS,"Success",c,owner_since=OWNER_AT)]
rest+=phases("mallory",3,2,30,"Microsoft.Authorization/roleAssignments/delete",A3,owner_since=OWNER_AT)
rest+=phases("mallory",3,2,35,"Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write",FIC,owner_since=OWNER_AT,
   req={"properties":{"issuer":ISSUER,"subject":"system:serviceaccount:payments:debug-shell","audiences":["api://AzureADTokenExchange"]}})
rest+=phases("mallory",3,2,40,"Microsoft.Authorization/roleDefinitions/write",CR,code="Created",owner_since=OWNER_AT,req={"properties":{"roleName":"AKS Credential Reader","description":"Read AKS cluster credentials for break-glass troubleshooting","type":"CustomRole",
   "permissions":[{"actions":["Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action","Microsoft.ContainerService/managedClusters/read"],"notActions":[],"dataActions":[],"notDataActions":[]}],"assignableScopes":[SUBID]}})
rest+=phases("bob",3,11,5,RA,BOB_RA,req=ra_body(ROLE["User Access Administrator"],BOB,"User",RG),fail=True)
rest.append(signin("mallory",3,2,14))
relevant2=(len(rest)-1)+len(own)+1   # minus the sign-in (noise), plus the duplicate Success
n2=noise(3,round(relevant2*2.2),["alice","alice","bob"])
body=sorted(rest+n2,key=lambda r:r["time"])
ch=split(body,5)
# Envelope order: the Owner grant's Success (and Accept) in the first envelope, its Start (with the body) in the third,
# an identical copy of the Success at the end of the last.
ch[0]=[own_success,own_accept]+ch[0]
ch[2]=ch[2][:len(ch[2])//2]+[own_start]+ch[2][len(ch[2])//2:]
ch[-1]=ch[-1]+[copy.deepcopy(own_success)]

# ---------- kubernetes ----------
RB="rbac.authorization.k8s.io/v1"
_rv=[41000]
def nrv(): _rv[0]+=random.randint(3,400); return str(_rv[0])
def mf(manager, api, time, fields, op="Update"):
    return {"manager":manager,"operation":op,"apiVersion":api,"time":time,"fieldsType":"FieldsV1","fieldsV1":fields}
def meta(name, api, fields, ns=None, labels=None, ann=None, manager="kubectl-client-side-apply", time="2026-10-01T08:00:00Z"):
    m={"name":name}
    if ns: m["namespace"]=ns
    m.update({"uid":gid(),"resourceVersion":nrv(),"creationTimestamp":"2026-10-01T08:00:00Z"})
    if labels: m["labels"]=labels
    if ann: m["annotations"]=ann
    m["managedFields"]=[mf(manager,api,time,fields)]
    return m
def fmeta(labels=None, ann=None):
    f={}
    if ann: f["f:annotations"]={".":{} ,**{f"f:{k}":{} for k in ann}}
    if labels: f["f:labels"]={".":{} ,**{f"f:{k}":{} for k in labels}}
    return {"f:metadata":f} if f else {}
F_ROLEREF={"f:roleRef":{},"f:subjects":{}}
boot={"kubernetes.io/bootstrapping":"rbac-defaults"}
auto={"rbac.authorization.kubernetes.io/autoupdate":"true"}
helm=lambda rel:{"app.kubernetes.io/managed-by":"Helm","app.kubernetes.io/instance":rel}
helm_ann=lambda rel,ns:{"meta.helm.sh/release-name":rel,"meta.helm.sh/release-namespace":ns}
def cr(name, rules, labels, ann=None, manager="kubectl-client-side-apply", agg=None):
    o={"apiVersion":RB,"kind":"ClusterRole","metadata":meta(name,RB,{**fmeta(labels,ann),"f:rules":{}},labels=labels,ann=ann,manager=manager)}
    if agg: o["aggregationRule"]=agg
    o["rules"]=rules; return o
def crb(name, role, subjects, labels, ann=None, manager="kubectl-client-side-apply", time="2026-10-01T08:00:00Z"):
    o={"apiVersion":RB,"kind":"ClusterRoleBinding","metadata":meta(name,RB,{**fmeta(labels,ann),**F_ROLEREF},labels=labels,ann=ann,manager=manager,time=time),
       "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":role},"subjects":subjects}
    if time!="2026-10-01T08:00:00Z": o["metadata"]["creationTimestamp"]=time
    return o
def rb(name, ns, rk, role, subjects, labels, ann=None, manager="helm"):
    return {"apiVersion":RB,"kind":"RoleBinding","metadata":meta(name,RB,{**fmeta(labels,ann),**F_ROLEREF},ns=ns,labels=labels,ann=ann,manager=manager),
            "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":rk,"name":role},"subjects":subjects}
def G(x): return {"apiGroup":"rbac.authorization.k8s.io","kind":"Group","name":x}
def U(x): return {"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":x}
def SA(n,ns): return {"kind":"ServiceAccount","name":n,"namespace":ns}
agg_view_rules=[{"apiGroups":[""],"resources":["configmaps","endpoints","persistentvolumeclaims","pods","replicationcontrollers","services"],"verbs":["get","list","watch"]},
                {"apiGroups":["apps"],"resources":["daemonsets","deployments","replicasets","statefulsets"],"verbs":["get","list","watch"]}]
sa_labels={"app.kubernetes.io/name":"payments-api",**helm("payments-api"),"helm.sh/chart":"payments-api-2.4.0"}
sa_ann={"azure.workload.identity/client-id":"4b4b4b4b-0000-4000-8000-0000000000b2","azure.workload.identity/tenant-id":TEN,**helm_ann("payments-api","payments"),
        "contoso.com/last-deployed":"2026-10-01T08:00:00Z"}
items=[
 cr("cluster-admin",[{"apiGroups":["*"],"resources":["*"],"verbs":["*"]},{"nonResourceURLs":["*"],"verbs":["*"]}],boot,auto,manager="kube-apiserver"),
 cr("system:aggregate-to-view",agg_view_rules,{**boot,"rbac.authorization.k8s.io/aggregate-to-view":"true"},auto,manager="kube-apiserver"),
 cr("view-secrets-operator",[{"apiGroups":[""],"resources":["secrets"],"verbs":["get","list"]}],{"app.kubernetes.io/name":"secrets-operator","app.kubernetes.io/part-of":"platform"}),
 crb("aks-cluster-admin-binding-aad","cluster-admin",[G(ADMINS)],{"addonmanager.kubernetes.io/mode":"Reconcile","kubernetes.io/cluster-service":"true"}),
 crb("system:basic-user","system:basic-user",[G("system:authenticated")],boot,auto,manager="kube-apiserver"),
 {"apiVersion":RB,"kind":"Role","metadata":meta("payments-deployer",RB,{**fmeta(helm("payments-platform"),helm_ann("payments-platform","payments")),"f:rules":{}},ns="payments",labels=helm("payments-platform"),ann=helm_ann("payments-platform","payments"),manager="helm"),
  "rules":[{"apiGroups":["apps"],"resources":["deployments"],"verbs":["create","delete","get","list","patch","update","watch"]},{"apiGroups":[""],"resources":["services"],"verbs":["create","delete","get","list","patch","update","watch"]}]},
 rb("payments-deployer-binding","payments","Role","payments-deployer",[G("e0e0e0e0-2222-3333-4444-555566667777")],helm("payments-platform"),helm_ann("payments-platform","payments")),
 rb("prometheus-read","monitoring","ClusterRole","view",[SA("prometheus","monitoring")],{"app.kubernetes.io/name":"prometheus",**helm("kube-prometheus")},helm_ann("kube-prometheus","monitoring")),
 {"apiVersion":"v1","kind":"ServiceAccount","metadata":meta("payments-api","v1",fmeta(sa_labels,sa_ann),ns="payments",labels=sa_labels,ann=sa_ann,manager="helm")},
 {"apiVersion":"v1","kind":"ServiceAccount","metadata":meta("default","v1",{},ns="payments",manager="kube-controller-manager")},
]
k8s1={"apiVersion":"v1","kind":"List","items":items,"metadata":{"resourceVersion":""}}
_rv[0]=58000
def mod(o, manager, time, fields):
    o=copy.deepcopy(o); o["metadata"]["resourceVersion"]=nrv()
    o["metadata"]["managedFields"].append(mf(manager,o["apiVersion"],time,fields)); return o
ev=[]
ev.append({"type":"ADDED","object":crb("debug-admin","cluster-admin",[U("mallory@contoso.com")],{"app.kubernetes.io/managed-by":"kubectl"},manager="kubectl-create",time="2026-11-03T02:26:10Z")})
sa=mod(items[8],"helm","2026-11-03T09:00:00Z",{"f:metadata":{"f:annotations":{"f:contoso.com/last-deployed":{}},"f:labels":{"f:helm.sh/chart":{}}}})
sa["metadata"]["annotations"]["contoso.com/last-deployed"]="2026-11-03T09:00:00Z"; sa["metadata"]["labels"]["helm.sh/chart"]="payments-api-2.4.1"
ev.append({"type":"MODIFIED","object":sa})
rbm=mod(items[6],"kubectl-edit","2026-11-03T02:28:00Z",{"f:subjects":{}}); rbm["subjects"].append(SA("default","payments"))
ev.append({"type":"MODIFIED","object":rbm})
# A DELETED event carries the last state; the demo stamps the deletion time on the object's field manager, as the
# watcher has no other time for it.
dl=copy.deepcopy(items[7]); dl["metadata"]["resourceVersion"]=nrv(); dl["metadata"]["managedFields"][0]["time"]="2026-11-03T02:31:00Z"
ev.append({"type":"DELETED","object":dl})
agg=mod(items[1],"kube-apiserver","2026-11-03T04:00:00Z",{"f:rules":{}}); agg["rules"].append({"apiGroups":["discovery.k8s.io"],"resources":["endpointslices"],"verbs":["get","list","watch"]})
ev.append({"type":"MODIFIED","object":agg})

d=os.path.dirname(os.path.abspath(__file__))
open(f"{d}/day1-activity.json","w").write(envelopes(split(day1,5)))
open(f"{d}/day2-activity.json","w").write(envelopes(ch))
open(f"{d}/day1-k8s.json","w").write(json.dumps(k8s1,indent=2)+"\n")
lines=[json.dumps(e,separators=(",",":")) for e in ev]
lines.insert(3,'{"type":"MODIFIED","object":{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"truncated-by-a-log-shipper","namespace":"payments"')
open(f"{d}/day2-k8s.ndjson","w").write("\n".join(lines)+"\n")
print("day1",len(day1),"relevant",relevant1,"| day2",sum(map(len,ch)),"relevant",relevant2)
